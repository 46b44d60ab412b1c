// Trivial bandwidth kernels, the yardstick of the benchmarks: they move the same bytes
// as an optimizer step but do almost no arithmetic, and they run through the same
// parallel_pieces() loop, so "% of the traffic kernel" isolates the optimizers' cost.
//
//   triad:    a = b + s * c                         (STREAM: reads 2 arrays, writes 1)
//   traffic:  x = r_0 + ... + r_(NR-1);  a_k = a_k * s + x   for k < NI
//             (reads NI + NR arrays, writes NI: an optimizer with NI - 1 state arrays
//             has NI = 1 + n_state in-place arrays and NR = 1 read-only grad)
//
// Compiled once per instruction-set target (target.hpp): traffic() and triad() below are
// what a target's table offers fusedopt._core.traffic / triad.
#pragma once

#include <cstddef>

#include "fusedopt/parallel.hpp"
#include "fusedopt/types.hpp"

namespace fusedopt {
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

}  // namespace bench
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
