// Trivial bandwidth kernels, the yardstick of the benchmarks: they move the same bytes
// as an optimizer step but do almost no arithmetic, and they run through the same
// parallel_pieces() loop, so "% of the traffic kernel" isolates the optimizers' cost.
//
//   triad:    a = b + s * c                         (STREAM: reads 2 arrays, writes 1)
//   traffic:  x = r_0 + ... + r_(NR-1);  a_k = a_k * s + x   for k < NI
//             (reads NI + NR arrays, writes NI: an optimizer with NI - 1 state arrays
//             has NI = 1 + n_state in-place arrays and NR = 1 read-only grad)
//
//   traffic_mixed: the traffic pattern over arrays of several element widths (a bfloat16
//             param and grad with float32 state, int8 codes with their float32 block
//             scales...), each array taken as the unsigned integers of its width:
//             x = r_0 + ... + r_(NR-1) (mod 2^32);  a_k = a_k + x (mod 2^(8 * width_k)).
//             An array may hold one element per kQuantBlock elements of its tensor (a
//             block scale): it is read or written once per block, with x of the block's
//             first element. Every array is streamed once per sweep, so a sweep moves
//             exactly the bytes of the arrays, as a low-precision step moves them.
//
// Compiled once per instruction-set target (target.hpp): traffic(), triad() and
// traffic_mixed() below are what a target's table offers fusedopt._core.traffic / triad /
// traffic_mixed.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fusedopt/parallel.hpp"
#include "fusedopt/types.hpp"

namespace fusedopt {

// The arrays of one traffic_mixed sweep: BenchWork's roles (data[t * n_roles + k]), and
// for each array the same index into width (bytes per element: 1, 2, 4 or 8) and
// per_block (1: one element per kQuantBlock elements of its tensor, else one per element).
struct MixedWork : BenchWork {
    std::vector<unsigned char> width;
    std::vector<unsigned char> per_block;
};

inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace bench {

template <class T>
void triad_loop(T* __restrict a, const T* __restrict b, const T* __restrict c, T s, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

// The element loop of traffic for NI in-place and NR read-only arrays. The pointers are
// copied into __restrict locals, as the optimizer kernels do, so that the compiler
// vectorizes it the same way.
template <int NI, int NR, class T>
void traffic_loop(T* const* a, const T* const* r, T s, std::size_t n) {
    static_assert(NI >= 1 && NI <= kMaxInplace && NR >= 0 && NR <= kMaxReadonly, "unsupported pattern");
    T* __restrict a0 = a[0];
    T* __restrict a1 = NI > 1 ? a[1] : nullptr;
    T* __restrict a2 = NI > 2 ? a[2] : nullptr;
    T* __restrict a3 = NI > 3 ? a[3] : nullptr;
    T* __restrict a4 = NI > 4 ? a[4] : nullptr;
    T* __restrict a5 = NI > 5 ? a[5] : nullptr;
    const T* __restrict r0 = NR > 0 ? r[0] : nullptr;
    const T* __restrict r1 = NR > 1 ? r[1] : nullptr;
    const T* __restrict r2 = NR > 2 ? r[2] : nullptr;
    const T* __restrict r3 = NR > 3 ? r[3] : nullptr;
    for (std::size_t i = 0; i < n; ++i) {
        T x = T(0);
        if constexpr (NR > 0) x = r0[i];
        if constexpr (NR > 1) x = x + r1[i];
        if constexpr (NR > 2) x = x + r2[i];
        if constexpr (NR > 3) x = x + r3[i];
        a0[i] = a0[i] * s + x;
        if constexpr (NI > 1) a1[i] = a1[i] * s + x;
        if constexpr (NI > 2) a2[i] = a2[i] * s + x;
        if constexpr (NI > 3) a3[i] = a3[i] * s + x;
        if constexpr (NI > 4) a4[i] = a4[i] * s + x;
        if constexpr (NI > 5) a5[i] = a5[i] * s + x;
    }
}

template <class T, int NI, int NR>
void traffic_sweeps(const BenchWork& w, T s, long repeat) {
    const std::size_t n_roles = NI + NR;
    void* const* data = w.data.data();
    for (long rep = 0; rep < repeat; ++rep) {
        parallel_pieces(w.offsets, w.sizes, [data, n_roles, s](std::size_t t, std::size_t start, std::size_t count) {
            T* a[kMaxInplace] = {};
            const T* r[kMaxReadonly] = {};
            for (int k = 0; k < NI; ++k) a[k] = static_cast<T*>(data[t * n_roles + static_cast<std::size_t>(k)]) + start;
            for (int k = 0; k < NR; ++k)
                r[k] = static_cast<const T*>(data[t * n_roles + static_cast<std::size_t>(NI + k)]) + start;
            traffic_loop<NI, NR, T>(a, r, s, count);
        });
    }
}

template <class T, int NI>
void traffic_nr(const BenchWork& w, T s, long repeat) {
    switch (w.n_readonly) {
        case 0:
            return traffic_sweeps<T, NI, 0>(w, s, repeat);
        case 1:
            return traffic_sweeps<T, NI, 1>(w, s, repeat);
        case 2:
            return traffic_sweeps<T, NI, 2>(w, s, repeat);
        case 3:
            return traffic_sweeps<T, NI, 3>(w, s, repeat);
        default:
            return traffic_sweeps<T, NI, 4>(w, s, repeat);
    }
}

template <class T>
void traffic_run(const BenchWork& w, T s, long repeat) {
    static_assert(kMaxInplace == 6 && kMaxReadonly == 4, "update the dispatch");
    switch (w.n_inplace) {
        case 1:
            return traffic_nr<T, 1>(w, s, repeat);
        case 2:
            return traffic_nr<T, 2>(w, s, repeat);
        case 3:
            return traffic_nr<T, 3>(w, s, repeat);
        case 4:
            return traffic_nr<T, 4>(w, s, repeat);
        case 5:
            return traffic_nr<T, 5>(w, s, repeat);
        default:
            return traffic_nr<T, 6>(w, s, repeat);
    }
}

template <class T>
void triad_run(const BenchWork& w, T s, long repeat) {
    void* const* data = w.data.data();
    for (long rep = 0; rep < repeat; ++rep) {
        parallel_pieces(w.offsets, w.sizes, [data, s](std::size_t t, std::size_t start, std::size_t count) {
            triad_loop<T>(static_cast<T*>(data[3 * t]) + start, static_cast<const T*>(data[3 * t + 1]) + start,
                          static_cast<const T*>(data[3 * t + 2]) + start, s, count);
        });
    }
}

// A target's traffic sweep: the pattern's loop for w's roles and dtype.
inline void traffic(const BenchWork& w, double scale, long repeat) {
    if (w.is_double)
        traffic_run<double>(w, scale, repeat);
    else
        traffic_run<float>(w, static_cast<float>(scale), repeat);
}

// A target's STREAM triad sweep.
inline void triad(const BenchWork& w, double scale, long repeat) {
    if (w.is_double)
        triad_run<double>(w, scale, repeat);
    else
        triad_run<float>(w, static_cast<float>(scale), repeat);
}

// ---------------------------------------------------------------- mixed widths
// traffic_mixed works through a piece in spans of kMixedSpan elements: x of a span lives in
// a small buffer (L1), each array is then read or updated over the span by a loop of its
// own element type. Every span of every array is touched once, in order, so the memory
// streams are those of a fused loop; the per-array loops keep the element loops plain
// (one type each) for the vectorizer however the widths are mixed.
inline constexpr std::size_t kMixedSpan = 512;
static_assert(kMixedSpan % kQuantBlock == 0 && kGrain % kQuantBlock == 0,
              "a piece and a span start at a block boundary of every tensor");

// fn(U{}) with U the unsigned integer type of `width` bytes.
template <class Fn>
inline void by_width(unsigned char width, Fn&& fn) {
    switch (width) {
        case 1:
            return fn(std::uint8_t{});
        case 2:
            return fn(std::uint16_t{});
        case 4:
            return fn(std::uint32_t{});
        default:
            return fn(std::uint64_t{});
    }
}

// x[0, m) (first: =, else +=) the elements [e0, e0 + m) of a read-only array of U, or of
// its block scales (per_block).
template <class U>
void mixed_read(std::uint32_t* __restrict x, const void* data, bool per_block, bool first, std::size_t e0, std::size_t m) {
    const U* __restrict r = static_cast<const U*>(data);
    if (!per_block) {
        r += e0;
        if (first)
            for (std::size_t i = 0; i < m; ++i) x[i] = static_cast<std::uint32_t>(r[i]);
        else
            for (std::size_t i = 0; i < m; ++i) x[i] = x[i] + static_cast<std::uint32_t>(r[i]);
        return;
    }
    for (std::size_t b = 0; b < m; b += kQuantBlock) {
        const std::uint32_t v = static_cast<std::uint32_t>(r[(e0 + b) / kQuantBlock]);
        const std::size_t end = std::min(m, b + kQuantBlock);
        if (first)
            for (std::size_t i = b; i < end; ++i) x[i] = v;
        else
            for (std::size_t i = b; i < end; ++i) x[i] = x[i] + v;
    }
}

// An in-place array of U over [e0, e0 + m): a += x, or its block scales a[block] += x at
// the block's first element.
template <class U>
void mixed_update(void* data, const std::uint32_t* __restrict x, bool per_block, std::size_t e0, std::size_t m) {
    U* __restrict a = static_cast<U*>(data);
    if (!per_block) {
        a += e0;
        for (std::size_t i = 0; i < m; ++i) a[i] = static_cast<U>(a[i] + static_cast<U>(x[i]));
        return;
    }
    for (std::size_t b = 0; b < m; b += kQuantBlock) {
        U& s = a[(e0 + b) / kQuantBlock];
        s = static_cast<U>(s + static_cast<U>(x[b]));
    }
}

// The element loop of an optimizer step's layout, fused as the optimizers' loops are:
// d = [param (P, rw), NS x (state (S, rw), its block scales if Q (32 bits, rw)), grad
// (P, r)] of one tensor, over elements [e0, e0 + m); e0 is a block boundary.
template <class P, class S, int NS>
void step_elems(P* __restrict p, S* const* st, const P* __restrict g, std::size_t n) {
    static_assert(NS >= 0 && NS <= 3, "unsupported step layout");
    S* __restrict s0 = NS > 0 ? st[0] : nullptr;
    S* __restrict s1 = NS > 1 ? st[1] : nullptr;
    S* __restrict s2 = NS > 2 ? st[2] : nullptr;
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t x = static_cast<std::uint32_t>(g[i]);
        p[i] = static_cast<P>(p[i] + static_cast<P>(x));
        if constexpr (NS > 0) s0[i] = static_cast<S>(s0[i] + static_cast<S>(x));
        if constexpr (NS > 1) s1[i] = static_cast<S>(s1[i] + static_cast<S>(x));
        if constexpr (NS > 2) s2[i] = static_cast<S>(s2[i] + static_cast<S>(x));
    }
}

template <class P, class S, int NS, bool Q>
void step_layout_loop(void* const* d, std::size_t e0, std::size_t m) {
    constexpr int per_state = Q ? 2 : 1;
    P* const p = static_cast<P*>(d[0]) + e0;
    const P* const g = static_cast<const P*>(d[1 + NS * per_state]) + e0;
    S* st[3] = {};
    std::uint32_t* scale[3] = {};
    for (int k = 0; k < NS; ++k) {
        st[k] = static_cast<S*>(d[1 + k * per_state]) + e0;
        if constexpr (Q) scale[k] = static_cast<std::uint32_t*>(d[2 + k * per_state]) + e0 / kQuantBlock;
    }
    if constexpr (!Q) {
        step_elems<P, S, NS>(p, st, g, m);
    } else {  // the blocks' scales after each span's elements, while its grad is in L1
        for (std::size_t j = 0; j < m; j += kMixedSpan) {
            const std::size_t end = std::min(m, j + kMixedSpan);
            S* at[3] = {};
            for (int k = 0; k < NS; ++k) at[k] = st[k] + j;
            step_elems<P, S, NS>(p + j, at, g + j, end - j);
            for (std::size_t b = j; b < end; b += kQuantBlock) {
                const std::uint32_t x = static_cast<std::uint32_t>(g[b]);
                for (int k = 0; k < NS; ++k) scale[k][b / kQuantBlock] += x;
            }
        }
    }
}

template <class P, class S, int NS, bool Q>
void step_layout_sweeps(const MixedWork& w, long repeat) {
    const std::size_t n_roles = static_cast<std::size_t>(w.n_inplace + w.n_readonly);
    void* const* data = w.data.data();
    for (long rep = 0; rep < repeat; ++rep)
        parallel_pieces(w.offsets, w.sizes, [data, n_roles](std::size_t t, std::size_t start, std::size_t count) {
            step_layout_loop<P, S, NS, Q>(data + t * n_roles, start, count);
        });
}

// Whether w is an optimizer step's layout (step_layout_loop) that the fused loops take:
// every tensor's arrays [param, NS x (state[, scale]), grad], the grad of the param's
// width (2, 4 or 8 bytes), the states of one width (2, 4 or 8; or 1, each with 32-bit
// block scales), 0 to 3 states. Sets the widths, NS and Q.
inline bool step_layout(const MixedWork& w, unsigned char& pw, unsigned char& sw, int& ns, bool& q) {
    if (w.n_readonly != 1 || w.width.empty()) return false;
    const std::size_t n_roles = static_cast<std::size_t>(w.n_inplace + 1);
    pw = w.width[0];
    q = w.n_inplace >= 3 && w.per_block[2];
    ns = q ? (w.n_inplace - 1) / 2 : w.n_inplace - 1;
    sw = ns > 0 ? w.width[1] : pw;
    if (pw == 1 || (q && sw != 1) || (!q && sw == 1) || ns > 3 || (q && w.n_inplace % 2 == 0)) return false;
    for (std::size_t j = 0; j < w.width.size(); ++j) {
        const std::size_t k = j % n_roles;
        unsigned char want = pw, block = 0;
        if (k > 0 && k + 1 < n_roles) {
            const bool is_scale = q && (k - 1) % 2 == 1;
            want = is_scale ? 4 : sw;
            block = is_scale ? 1 : 0;
        }
        if (w.width[j] != want || w.per_block[j] != block) return false;
    }
    return true;
}

template <class P, class S>
void step_layout_ns(const MixedWork& w, int ns, long repeat) {
    switch (ns) {
        case 0:
            return step_layout_sweeps<P, S, 0, false>(w, repeat);
        case 1:
            return step_layout_sweeps<P, S, 1, false>(w, repeat);
        case 2:
            return step_layout_sweeps<P, S, 2, false>(w, repeat);
        default:
            return step_layout_sweeps<P, S, 3, false>(w, repeat);
    }
}

template <class P>
void step_layout_run(const MixedWork& w, unsigned char sw, int ns, bool q, long repeat) {
    if (q) {
        if (ns == 1) return step_layout_sweeps<P, std::uint8_t, 1, true>(w, repeat);
        return step_layout_sweeps<P, std::uint8_t, 2, true>(w, repeat);
    }
    if (ns == 0) return step_layout_sweeps<P, P, 0, false>(w, repeat);
    switch (sw) {
        case 2:
            return step_layout_ns<P, std::uint16_t>(w, ns, repeat);
        case 4:
            return step_layout_ns<P, std::uint32_t>(w, ns, repeat);
        default:
            return step_layout_ns<P, std::uint64_t>(w, ns, repeat);
    }
}

// The span loop: any mix of widths and block arrays.
inline void traffic_spans(const MixedWork& w, long repeat) {
    const std::size_t n_in = static_cast<std::size_t>(w.n_inplace), n_ro = static_cast<std::size_t>(w.n_readonly);
    const std::size_t n_roles = n_in + n_ro;
    for (long rep = 0; rep < repeat; ++rep) {
        parallel_pieces(w.offsets, w.sizes, [&w, n_in, n_ro, n_roles](std::size_t t, std::size_t start, std::size_t count) {
            alignas(64) std::uint32_t x[kMixedSpan];
            const std::size_t base = t * n_roles;
            for (std::size_t s = 0; s < count; s += kMixedSpan) {
                const std::size_t e0 = start + s, m = std::min(kMixedSpan, count - s);
                for (std::size_t k = 0; k < n_ro; ++k) {
                    const std::size_t j = base + n_in + k;
                    by_width(w.width[j],
                             [&](auto u) { mixed_read<decltype(u)>(x, w.data[j], w.per_block[j] != 0, k == 0, e0, m); });
                }
                if (n_ro == 0) std::fill(x, x + m, std::uint32_t{0});
                for (std::size_t k = 0; k < n_in; ++k) {
                    const std::size_t j = base + k;
                    by_width(w.width[j], [&](auto u) { mixed_update<decltype(u)>(w.data[j], x, w.per_block[j] != 0, e0, m); });
                }
            }
        });
    }
}

// A target's mixed-width traffic sweep: an optimizer step's layout through a fused loop
// (step_layout), any other mix through the span loop. Both compute the same bits.
inline void traffic_mixed(const MixedWork& w, long repeat) {
    unsigned char pw = 0, sw = 0;
    int ns = 0;
    bool q = false;
    if (!step_layout(w, pw, sw, ns, q)) return traffic_spans(w, repeat);
    switch (pw) {
        case 2:
            return step_layout_run<std::uint16_t>(w, sw, ns, q, repeat);
        case 4:
            return step_layout_run<std::uint32_t>(w, sw, ns, q, repeat);
        default:
            return step_layout_run<std::uint64_t>(w, sw, ns, q, repeat);
    }
}

}  // namespace bench
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
