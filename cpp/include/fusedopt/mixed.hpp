// The element loop of a tensor whose arrays are not all of the compute type: bfloat16 /
// float16 parameters and grads, half-precision or int8 state. Every table kernel runs
// through it unchanged (kernel.hpp's run_step picks it per tensor): a piece is cut into
// blocks of kMixedBlock elements; each block is widened into float32 buffers on the stack
// (float64 for a float64 parameter with int8 state), updated by the kernel's own
// update<C>() / sums<C>(), and narrowed back (the parameter rounded to nearest or
// stochastically, half state to nearest, int8 state requantized per kQuantBlock). Arrays
// already of the compute type (the float32 state of a half parameter) are used in place.
// No full-size temporary: each element is read and written once per pass.
//
// The common case, a bfloat16 parameter with float32 state, skips the buffers in the
// update: the kernel's own loop reads p[i] and g[i] through bfloat16 views (a shift) and
// rounds each p[i] = x as it writes it (on_mixed_update), so the conversions run in the
// same vectors as the arithmetic instead of in passes of their own.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "fusedopt/half.hpp"
#include "fusedopt/parallel.hpp"
#include "fusedopt/types.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {

// F16C's float16 conversions on the x86-64-v3 / -v4 targets (target.cpp includes
// immintrin.h and enables f16c for them; the run-time dispatch checks the CPU has it).
#if defined(FUSEDOPT_TARGET_V3) || defined(FUSEDOPT_TARGET_V4)
#define FUSEDOPT_F16C 1
#else
#define FUSEDOPT_F16C 0
#endif

// Elements per block of the mixed loop: whole quantization blocks (a piece starts at a
// multiple of kGrain = kQuantBlock inside its tensor, so every block's int8 sub-blocks are
// the tensor's own quantization blocks).
inline constexpr std::size_t kMixedBlock = 4 * kQuantBlock;
static_assert(kQuantBlock == kGrain, "a quantization block is one grain of the parallel loop");

// Whether tensor r needs the mixed loop.
inline bool is_mixed(const TensorRef& r) { return r.param_type >= kBFloat16 || r.state_type >= kBFloat16; }

namespace mixed {

template <class C>
constexpr unsigned char compute_type() {
    return sizeof(C) == 8 ? kFloat64 : kFloat32;
}

// dst[0..n) = src (of dtype `type`, from element `at`) widened to C.
template <class C>
inline void widen(unsigned char type, const void* src, std::size_t at, std::size_t n, C* __restrict dst) {
    if (type == kBFloat16) {
        const std::uint16_t* __restrict s = static_cast<const std::uint16_t*>(src) + at;
        for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<C>(half::from_bf16(s[i]));
    } else if (type == kFloat16) {
        const std::uint16_t* __restrict s = static_cast<const std::uint16_t*>(src) + at;
        std::size_t i = 0;
#if FUSEDOPT_F16C
        if constexpr (std::is_same_v<C, float>)  // F16C: 8 at a time in registers
            for (; i + 8 <= n; i += 8)
                _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
#endif
        for (; i < n; ++i) dst[i] = static_cast<C>(half::from_f16(s[i]));
    } else if (type == kFloat32) {
        const float* __restrict s = static_cast<const float*>(src) + at;
        for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<C>(s[i]);
    } else {
        const double* __restrict s = static_cast<const double*>(src) + at;
        for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<C>(s[i]);
    }
}

// dst (of 16-bit dtype `type`, from element `at`) = src[0..n) rounded to nearest, or
// stochastically with the key's bits of elements at, at + 1, ...
template <class C>
inline void narrow(unsigned char type, const C* __restrict src, void* dst, std::size_t at, std::size_t n, bool stochastic,
                   const unsigned* key) {
    const std::uint32_t lo = static_cast<std::uint32_t>(at);
    const std::uint64_t room = half::elements_in_run(at);
    if (stochastic && n > room) {
        narrow(type, src, dst, at, static_cast<std::size_t>(room), true, key);
        narrow(type, src + room, dst, at + static_cast<std::size_t>(room), n - static_cast<std::size_t>(room), true, key);
        return;
    }
    std::uint16_t* __restrict d = static_cast<std::uint16_t*>(dst) + at;
    const std::uint32_t k0 = key[0], k1 = key[1], hi = static_cast<std::uint32_t>(static_cast<std::uint64_t>(at) >> 32);
    if (type == kBFloat16) {
        if (stochastic)
            for (std::size_t i = 0; i < n; ++i)
                d[i] = half::to_bf16(static_cast<float>(src[i]), half::sr_bits(k0, k1, lo + static_cast<std::uint32_t>(i), hi),
                                     true);
        else
            for (std::size_t i = 0; i < n; ++i) d[i] = half::to_bf16(static_cast<float>(src[i]), 0u, false);
    } else {
        if (stochastic)
            for (std::size_t i = 0; i < n; ++i)
                d[i] =
                    half::to_f16(static_cast<float>(src[i]), half::sr_bits(k0, k1, lo + static_cast<std::uint32_t>(i), hi), true);
        else {
            std::size_t i = 0;
#if FUSEDOPT_F16C
            if constexpr (std::is_same_v<C, float>)  // F16C rounds to nearest even, as to_f16
                for (; i + 8 <= n; i += 8)
                    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
            for (; i < n; ++i) d[i] = half::to_f16(static_cast<float>(src[i]), 0u, false);
        }
    }
}

// Calls body(m) for a block of m elements: m a compile-time kQuantBlock for a whole block
// (the loops unroll into a few full vectors, without remainder handling), else the count.
template <class F>
inline void with_block_size(std::size_t m, F&& body) {
    if (m == kQuantBlock)
        body(std::integral_constant<std::size_t, kQuantBlock>{});
    else
        body(m);
}

// dst[0..n) = the int8 state (codes from element `at`, absmax per block) dequantized.
template <class C>
inline void dequantize(unsigned char code, const void* codes, const float* absmax, std::size_t at, std::size_t n,
                       C* __restrict dst) {
    for (std::size_t b = 0; b < n; b += kQuantBlock) {
        const float a = absmax[(at + b) / kQuantBlock];
        C* __restrict d = dst + b;
        with_block_size(std::min(kQuantBlock, n - b), [&](auto m) {
            if (code == kQuantExponent) {
                const std::uint8_t* __restrict q = static_cast<const std::uint8_t*>(codes) + at + b;
                for (std::size_t i = 0; i < m; ++i) d[i] = static_cast<C>(half::dequant_exponent(q[i], a));
            } else {
                const std::int8_t* __restrict q = static_cast<const std::int8_t*>(codes) + at + b;
                const float scale = a / 127.0f;
                for (std::size_t i = 0; i < m; ++i) d[i] = static_cast<C>(half::dequant_linear(q[i], scale));
            }
        });
    }
}

// The int8 state from element `at` = src[0..n) quantized, each block with its new absmax.
template <class C>
inline void quantize(unsigned char code, const C* __restrict src, void* codes, float* absmax, std::size_t at, std::size_t n) {
    for (std::size_t b = 0; b < n; b += kQuantBlock) {
        const C* __restrict x = src + b;
        with_block_size(std::min(kQuantBlock, n - b), [&](auto m) {
            // max |x| on the bits: for non-negative floats the integer order is the float
            // order, and a NaN's bits exceed inf's, so a NaN propagates (an integer max
            // vectorizes)
            std::uint32_t top = 0;
            for (std::size_t i = 0; i < m; ++i) {
                const std::uint32_t mag = half::bits_of(static_cast<float>(x[i])) & 0x7fffffffu;
                top = mag > top ? mag : top;
            }
            const float a = half::float_of(top);
            absmax[(at + b) / kQuantBlock] = a;
            if (code == kQuantExponent) {
                std::uint8_t* __restrict q = static_cast<std::uint8_t*>(codes) + at + b;
                const float inv = a > 0.0f ? 1.0f / a : 0.0f;
                for (std::size_t i = 0; i < m; ++i) q[i] = half::quant_exponent(static_cast<float>(x[i]) * inv);
            } else {
                std::int8_t* __restrict q = static_cast<std::int8_t*>(codes) + at + b;
                const float inv = a > 0.0f ? 127.0f / a : 0.0f;
                for (std::size_t i = 0; i < m; ++i) q[i] = half::quant_linear(static_cast<float>(x[i]), inv);
            }
        });
    }
}

// Runs f(p, g, s, n) (a kernel's update or sums over C arrays) over elements [start, start +
// count) of tensor r, block by block; writes the parameter back when write_param (update),
// the state always (a sums pass may write state: LAMB's moments).
template <class C, class F>
void run_blocks(const TensorRef& r, std::size_t start, std::size_t count, bool write_param, F&& f) {
    constexpr unsigned char own = compute_type<C>();
    alignas(64) C pbuf[kMixedBlock], gbuf[kMixedBlock], sbuf[kMaxState][kMixedBlock];
    const bool p_in_place = r.param_type == own;
    const bool s_in_place = r.state_type == own;
    for (std::size_t j = 0; j < count; j += kMixedBlock) {
        const std::size_t n = std::min(kMixedBlock, count - j), at = start + j;
        C* p = p_in_place ? static_cast<C*>(r.param) + at : pbuf;
        const C* g = p_in_place ? static_cast<const C*>(r.grad) + at : gbuf;
        if (!p_in_place) {
            widen(r.param_type, r.param, at, n, pbuf);
            widen(r.param_type, r.grad, at, n, gbuf);
        }
        C* s[kMaxState];
        for (int k = 0; k < kMaxState; ++k) {
            if (!r.state[k]) {
                s[k] = nullptr;
            } else if (s_in_place) {
                s[k] = static_cast<C*>(r.state[k]) + at;
            } else {
                s[k] = sbuf[k];
                if (r.state_type == kInt8)
                    dequantize(r.quant[k], r.state[k], r.absmax[k], at, n, sbuf[k]);
                else
                    widen(r.state_type, r.state[k], at, n, sbuf[k]);
            }
        }
        f(p, g, static_cast<C* const*>(s), n);
        if (write_param && !p_in_place) narrow(r.param_type, pbuf, r.param, at, n, r.stochastic, r.sr_key);
        if (s_in_place) continue;
        for (int k = 0; k < kMaxState; ++k) {
            if (!r.state[k]) continue;
            if (r.state_type == kInt8)
                quantize(r.quant[k], sbuf[k], r.state[k], r.absmax[k], at, n);
            else
                narrow(r.state_type, sbuf[k], r.state[k], at, n, false, r.sr_key);
        }
    }
}

// A bfloat16 grad read in a kernel's loop: g[i] is its float32 value.
struct Bf16In {
    const std::uint16_t* q;
    float operator[](std::size_t i) const { return half::from_bf16(q[i]); }
};

// A bfloat16 parameter read and written in a kernel's loop: p[i] reads as its float32
// value; p[i] = x rounds x to nearest even, or stochastically with the bits of element
// hi * 2^32 + lo + i (the caller keeps a view inside one run of 2^32 elements).
template <bool Stochastic>
struct Bf16InOut {
    std::uint16_t* q;
    std::uint32_t lo, hi, k0, k1;
    struct Ref {
        std::uint16_t* at;
        std::uint32_t j;
        const Bf16InOut& view;
        operator float() const { return half::from_bf16(*at); }
        Ref& operator=(float x) {
            if constexpr (Stochastic)
                *at = half::to_bf16(x, half::sr_bits(view.k0, view.k1, j, view.hi), true);
            else
                *at = half::to_bf16(x, 0u, false);
            return *this;
        }
    };
    Ref operator[](std::size_t i) const { return {q + i, lo + static_cast<std::uint32_t>(i), *this}; }
};

// The update over elements [start, start + count) of a bfloat16 parameter with float32
// state: f(p, g, s, n) with bfloat16 views, in runs that do not cross a multiple of 2^32
// elements (the stochastic bits' high word is constant within a view).
template <class F>
inline void run_bf16_views(const TensorRef& r, std::size_t start, std::size_t count, F&& f) {
    for (std::size_t j = 0; j < count;) {
        const std::uint64_t at = start + j;
        const std::uint32_t lo = static_cast<std::uint32_t>(at), hi = static_cast<std::uint32_t>(at >> 32);
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(count - j, half::elements_in_run(at)));
        float* s[kMaxState];
        for (int k = 0; k < kMaxState; ++k) s[k] = r.state[k] ? static_cast<float*>(r.state[k]) + at : nullptr;
        std::uint16_t* p = static_cast<std::uint16_t*>(r.param) + at;
        const Bf16In g{static_cast<const std::uint16_t*>(r.grad) + at};
        if (r.stochastic)
            f(Bf16InOut<true>{p, lo, hi, r.sr_key[0], r.sr_key[1]}, g, static_cast<float* const*>(s), n);
        else
            f(Bf16InOut<false>{p, lo, hi, 0u, 0u}, g, static_cast<float* const*>(s), n);
        j += n;
    }
}

}  // namespace mixed

// f(p, g, s, n) over elements [start, start + count) of a mixed tensor, in its compute type
// (float64 for a float64 parameter, else float32).
template <class F>
inline void on_mixed_piece(const TensorRef& r, std::size_t start, std::size_t count, bool write_param, F&& f) {
    if (r.param_type == kFloat64)
        mixed::run_blocks<double>(r, start, count, write_param, f);
    else
        mixed::run_blocks<float>(r, start, count, write_param, f);
}

// A kernel's update (f as K::update: it takes views as well as pointers) over elements
// [start, start + count) of a mixed tensor: in the kernel's own loop for a bfloat16
// parameter with float32 state, through the block loop otherwise.
template <class F>
inline void on_mixed_update(const TensorRef& r, std::size_t start, std::size_t count, F&& f) {
    if (r.param_type == kBFloat16 && r.state_type == kFloat32)
        mixed::run_bf16_views(r, start, count, f);
    else
        on_mixed_piece(r, start, count, true, f);
}

}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
