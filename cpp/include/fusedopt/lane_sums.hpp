// Float64 lane sums of values computed element by element in the tensor's own type, in a
// form the compiler vectorizes: the kernels whose sums pass also does element-wise work
// (Prodigy, SGDHD, AdamHD). Each chunk of elements is computed into arrays of T (a plain
// loop the compiler vectorizes) and then added to the float64 lanes, float32 as two
// vectors of 4 doubles (GCC and Clang; the compiler does not vectorize a float32 ->
// float64 sum on its own), one at a time elsewhere and in the tail: the same bits either
// way, and element i always goes to lane i % kLanes (reduce.hpp), so the sums do not
// depend on the number of threads.
#pragma once

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "fusedopt/reduce.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {

// acc[k] += double(x[k]) for k in [0, kLanes).
template <class T>
inline void add_to_lanes(double* acc, const T* x) {
    static_assert(kLanes == 8, "two vectors of 4 lanes");
#if defined(__GNUC__)
    if constexpr (std::is_same_v<T, float>) {
        typedef double D4 __attribute__((vector_size(32)));
        typedef float F4 __attribute__((vector_size(16)));
        F4 lo, hi;
        D4 a, b;
        std::memcpy(&lo, x, sizeof lo);
        std::memcpy(&hi, x + 4, sizeof hi);
        std::memcpy(&a, acc, sizeof a);
        std::memcpy(&b, acc + 4, sizeof b);
        a += __builtin_convertvector(lo, D4);
        b += __builtin_convertvector(hi, D4);
        std::memcpy(acc, &a, sizeof a);
        std::memcpy(acc + 4, &b, sizeof b);
        return;
    }
#endif
    for (int k = 0; k < kLanes; ++k) acc[k] += static_cast<double>(x[k]);
}

// Elements per chunk of chunked_lane_sums (a multiple of kLanes).
inline constexpr std::size_t kSumChunk = 512;
static_assert(kSumChunk % kLanes == 0, "a chunk is whole blocks of lanes");

// For [0, n) in chunks of kSumChunk elements: f(start, len, out) does the work of elements
// [start, start + len) in one loop (a kernel's static function with __restrict arguments:
// the compiler vectorizes it) and writes out[j * kSumChunk + e] (type T), value j of element
// start + e; each value is then added to acc[j][(start + e) % kLanes] in float64, lane by
// lane in the order of the elements: the same bits as reduce.hpp's for_lanes.
template <int NS, class T, class F>
inline void chunked_lane_sums(std::size_t n, double (&acc)[NS][kLanes], F&& f) {
    T buf[NS * kSumChunk];
    for (std::size_t start = 0; start < n; start += kSumChunk) {
        const std::size_t len = n - start < kSumChunk ? n - start : kSumChunk;
        f(start, len, buf);
        for (int j = 0; j < NS; ++j) {
            const T* x = buf + static_cast<std::size_t>(j) * kSumChunk;
            std::size_t e = 0;
            for (; e + kLanes <= len; e += kLanes) add_to_lanes(acc[j], x + e);
            for (int k = 0; e < len; ++e, ++k) acc[j][k] += static_cast<double>(x[e]);
        }
    }
}

}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
