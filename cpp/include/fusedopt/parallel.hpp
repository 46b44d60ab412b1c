// The one parallel loop of fusedopt: every kernel runs through parallel_pieces().
//
// A step's tensors form a flat work list. Each tensor is given a virtual span
// rounded up to kGrain elements, so that every piece of work starts at a multiple of
// kGrain inside every tensor (whole cache lines, whole vectors) and no two threads
// write the same cache line of an array. The total is cut into equal contiguous
// chunks (about kChunksPerThread per thread) that the threads take in turn from a
// shared counter, whatever the number or sizes of the tensors: a model of many
// small tensors uses every core, the step opens one parallel region in all, and a
// thread delayed by another process on its core leaves its chunks to the others.
// Every element's result is the same whichever thread computes it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fusedopt {

// Elements per unit of work: 256 bytes of float32, 512 of float64.
inline constexpr std::size_t kGrain = 64;
// Below this many elements in one step a single thread does all the work: opening
// an OpenMP region costs a few microseconds, which pays off only past this size
// (measured, see BENCHMARKS.md).
inline constexpr std::size_t kParallelMin = std::size_t{1} << 16;
// A parallel step is cut into about kChunksPerThread chunks per thread, each of at
// least kChunkMin elements (so a chunk costs far more than taking it).
inline constexpr std::size_t kChunksPerThread = 8;
inline constexpr std::size_t kChunkMin = std::size_t{1} << 14;

int get_num_threads();
void set_num_threads(int n);
bool openmp_enabled();

inline std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// offsets[t] is the start of tensor t in the padded flat list; offsets[size] is the
// padded total. sizes[t] is the real element count of tensor t.
inline void build_offsets(const std::vector<std::size_t>& sizes, std::vector<std::size_t>& offsets) {
    offsets.assign(sizes.size() + 1, 0);
    for (std::size_t t = 0; t < sizes.size(); ++t) offsets[t + 1] = offsets[t] + round_up(sizes[t], kGrain);
}

namespace detail {
// Calls body(t, start, count) for every piece of [begin, end) of the padded list.
template <class Body>
void run_range(const std::size_t* offsets, const std::size_t* sizes, std::size_t ntensors, std::size_t begin, std::size_t end,
               Body& body) {
    std::size_t t = static_cast<std::size_t>(std::upper_bound(offsets, offsets + ntensors + 1, begin) - offsets) - 1;
    for (; t < ntensors && offsets[t] < end; ++t) {
        const std::size_t lo = std::max(begin, offsets[t]) - offsets[t];
        const std::size_t hi = std::min(end - offsets[t], sizes[t]);
        if (hi > lo) body(t, lo, hi - lo);
    }
}
}  // namespace detail

// Runs body(t, start, count) over every element of every tensor exactly once,
// shared out in chunks across the threads (or on the calling thread for small steps).
template <class Body>
void parallel_pieces(const std::vector<std::size_t>& offsets, const std::vector<std::size_t>& sizes, Body&& body) {
    const std::size_t ntensors = sizes.size();
    if (ntensors == 0) return;
    const std::size_t total = offsets[ntensors];
    const std::size_t units = total / kGrain;
    const int nthreads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(get_num_threads()), units));
    if (total < kParallelMin || nthreads <= 1) {
        detail::run_range(offsets.data(), sizes.data(), ntensors, 0, total, body);
        return;
    }
#ifdef _OPENMP
    // Threads take chunks from a shared counter rather than one fixed share each: on a
    // machine where another process holds a core, a thread that starts late finds the
    // work already done by the others instead of making them wait for its share.
    const std::size_t chunk = std::max(kChunkMin / kGrain, units / (static_cast<std::size_t>(nthreads) * kChunksPerThread));
    std::atomic<std::size_t> next{0};
#pragma omp parallel num_threads(nthreads)
    {
        for (;;) {
            const std::size_t first = next.fetch_add(chunk, std::memory_order_relaxed);
            if (first >= units) break;
            const std::size_t last = std::min(units, first + chunk);
            detail::run_range(offsets.data(), sizes.data(), ntensors, first * kGrain, last * kGrain, body);
        }
    }
#else
    detail::run_range(offsets.data(), sizes.data(), ntensors, 0, total, body);
#endif
}

}  // namespace fusedopt
