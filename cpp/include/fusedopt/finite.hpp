// The finiteness check of the opt-in non-finite guard (Optimizer.skip_nonfinite): whether
// every gradient of a step is finite, in one parallel sweep through the one parallel loop.
// Compiled once per instruction-set target (target.hpp).
//
// An element is non-finite (inf or NaN) exactly when all its exponent bits are set. The
// test is done on the bits, with an OR-reduction over integers, so that the compiler
// vectorizes it without -ffast-math (a floating-point reduction would not vectorize).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fusedopt/parallel.hpp"
#include "fusedopt/types.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {

// Whether x[0..n) holds no inf and no NaN.
template <class T>
inline bool all_finite(const T* __restrict x, std::size_t n) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float32 or float64");
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr U exponent = static_cast<U>(sizeof(T) == 4 ? 0x7f800000ull : 0x7ff0000000000000ull);
    U bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
        U bits;
        std::memcpy(&bits, x + i, sizeof bits);
        bad |= static_cast<U>((bits & exponent) == exponent);
    }
    return bad == 0;
}

// Whether x[0..n), 16-bit floats whose exponent bits are `exponent`, holds no inf and no NaN.
inline bool all_finite_16(const std::uint16_t* __restrict x, std::size_t n, std::uint16_t exponent) {
    unsigned bad = 0;
    for (std::size_t i = 0; i < n; ++i) bad |= static_cast<unsigned>((x[i] & exponent) == exponent);
    return bad == 0;
}

// Whether every element of every tensor's grad is finite.
inline bool grads_finite(const std::vector<TensorRef>& tensors, const std::vector<std::size_t>& offsets,
                         const std::vector<std::size_t>& sizes) {
    std::atomic<bool> ok{true};
    const TensorRef* refs = tensors.data();
    parallel_pieces(offsets, sizes, [refs, &ok](std::size_t t, std::size_t start, std::size_t count) {
        if (!ok.load(std::memory_order_relaxed)) return;  // another piece already found one
        const TensorRef& r = refs[t];
        const bool finite = r.param_type >= kBFloat16
                                ? all_finite_16(static_cast<const std::uint16_t*>(r.grad) + start, count,
                                                r.param_type == kBFloat16 ? std::uint16_t{0x7f80} : std::uint16_t{0x7c00})
                            : r.is_double ? all_finite(static_cast<const double*>(r.grad) + start, count)
                                          : all_finite(static_cast<const float*>(r.grad) + start, count);
        if (!finite) ok.store(false, std::memory_order_relaxed);
    });
    return ok.load(std::memory_order_relaxed);
}

}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
