// The one parallel loop of fusedopt: every kernel runs through parallel_pieces().
//
// A step's tensors form a flat work list. Each tensor is given a virtual span
// rounded up to kGrain elements, so that every piece of work starts at a multiple of
// kGrain inside every tensor (whole cache lines, whole vectors) and no two threads
// write the same cache line of an array. The total is cut into equal contiguous
// chunks (about kChunksPerThread per thread) that the threads take in turn from a
// shared counter, whatever the number or sizes of the tensors: a model of many small
// tensors uses every core, and a thread delayed by another process leaves its chunks
// to the others. Every element's result is the same whichever thread computes it.
//
// The threads are fusedopt's own persistent pool (cpp/src/parallel.cpp), not OpenMP:
// the calling thread works too and returns as soon as every chunk is done, without
// waiting for a worker that woke too late to find one; workers sleep as soon as the
// step's chunks are all taken (they never spin into the user's next matrix product).
//
// Reductions (parallel_sums) go through the same loop with one more rule: the work list
// is cut into fixed blocks of kReduceBlock elements, whatever the number of threads, and
// each (tensor, block) piece sums into a slot of its own (float64). The slots are then
// added in a fixed order: piece by piece within a tensor, tensor by tensor. So every
// norm and dot product gives the same bits on 1, 2, 3, ... threads.
//
// The pool and the thread setting are shared code; the loops below are compiled once
// per instruction-set target (target.hpp) and reach the pool through run_chunks().
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "fusedopt/target.hpp"

namespace fusedopt {

// Elements per unit of work: 256 bytes of float32, 512 of float64.
inline constexpr std::size_t kGrain = 64;
// Below this many elements in one step the calling thread does all the work: waking a
// worker costs a few microseconds, which pays off only past this size (measured, see
// BENCHMARKS.md).
inline constexpr std::size_t kParallelMin = std::size_t{1} << 16;
// A parallel step is cut into about kChunksPerThread chunks per thread, each of at
// least kChunkMin elements (so a chunk costs far more than taking it).
inline constexpr std::size_t kChunksPerThread = 8;
inline constexpr std::size_t kChunkMin = std::size_t{1} << 14;
// The fixed blocks of a reduction (elements of the padded work list): every partial sum
// covers at most one block of one tensor, on any number of threads.
inline constexpr std::size_t kReduceBlock = std::size_t{1} << 14;
static_assert(kReduceBlock % kGrain == 0, "a reduction block is whole grains");

// The threads a step may use (the caller and the pool's workers together).
int get_num_threads();
void set_num_threads(int n);
// Where the default of get_num_threads() came from ("OMP_NUM_THREADS", "cpus", ...).
const char* num_threads_source();
// Whether this build has the thread pool (FUSEDOPT_THREADS; without it, one thread).
bool threads_enabled();

// fn(ctx, k) for every chunk k in [0, n_chunks), shared between the calling thread and up
// to n_threads - 1 pool workers; returns when every chunk is done. fn must not throw.
using ChunkFn = void (*)(void* ctx, std::size_t chunk);
void run_chunks(std::size_t n_chunks, int n_threads, ChunkFn fn, void* ctx);

// How many workers the pool has started so far (build_info reports it).
int pool_workers();

inline namespace FUSEDOPT_TARGET_NAMESPACE {

inline std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// NaN-propagating maximum, like numpy.maximum and torch.maximum (kernels and reductions).
template <class T>
inline T nan_max(T a, T b) {
    return (a > b || a != a) ? a : b;
}

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

// One parallel sweep as run_chunks() sees it: chunk k covers units [k * chunk, ...).
template <class Body>
struct Sweep {
    const std::size_t* offsets;
    const std::size_t* sizes;
    std::size_t ntensors, units, chunk;
    Body* body;

    static void run(void* self, std::size_t k) {
        const Sweep& s = *static_cast<const Sweep*>(self);
        const std::size_t first = k * s.chunk, last = std::min(s.units, first + s.chunk);
        run_range(s.offsets, s.sizes, s.ntensors, first * kGrain, last * kGrain, *s.body);
    }
};
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
    const std::size_t chunk = std::max(kChunkMin / kGrain, units / (static_cast<std::size_t>(nthreads) * kChunksPerThread));
    detail::Sweep<std::remove_reference_t<Body>> sweep{offsets.data(), sizes.data(), ntensors, units, chunk, &body};
    run_chunks((units + chunk - 1) / chunk, nthreads, &decltype(sweep)::run, &sweep);
}

// How partial results are combined: a sum (norms of finite order, dot products) or a
// NaN-propagating maximum (the infinity norm). Both combine the pieces in a fixed order.
enum class Combine { sum, max };

namespace detail {
inline double combine(Combine op, double a, double b) { return op == Combine::sum ? a + b : nan_max(a, b); }

// The pieces of a reduction: piece_base[t] is the slot of tensor t's first block.
inline std::size_t first_block(const std::size_t* offsets, std::size_t t) { return offsets[t] / kReduceBlock; }
inline std::size_t n_blocks(const std::size_t* offsets, const std::size_t* sizes, std::size_t t) {
    return sizes[t] == 0 ? 0 : (offsets[t] + sizes[t] - 1) / kReduceBlock - first_block(offsets, t) + 1;
}

// One reduction as run_chunks() sees it: chunk k covers blocks [k * blocks_per_chunk, ...).
template <int NS, class Body>
struct ReduceSweep {
    const std::size_t* offsets;
    const std::size_t* sizes;
    const std::size_t* piece_base;
    std::size_t ntensors, total, blocks_per_chunk;
    double* slots;
    Body* body;

    // body(t, start, count, out) for every piece of block b, each with its own NS slots.
    void block(std::size_t b) const {
        const std::size_t begin = b * kReduceBlock, end = std::min(total, begin + kReduceBlock);
        auto piece = [this, b](std::size_t t, std::size_t start, std::size_t count) {
            double* out = slots + (piece_base[t] + (b - first_block(offsets, t))) * NS;
            (*body)(t, start, count, out);
        };
        run_range(offsets, sizes, ntensors, begin, end, piece);
    }
    static void run(void* self, std::size_t k) {
        const ReduceSweep& s = *static_cast<const ReduceSweep*>(self);
        const std::size_t n = (s.total + kReduceBlock - 1) / kReduceBlock;
        for (std::size_t b = k * s.blocks_per_chunk; b < std::min(n, (k + 1) * s.blocks_per_chunk); ++b) s.block(b);
    }
};
}  // namespace detail

// A reduction over every element of every tensor: body(t, start, count, out) adds the NS
// partial results of elements [start, start + count) of tensor t into out[0..NS) (zeroed
// before the sweep; a piece's own slots, which no other call touches). per_tensor[t * NS + j] receives tensor t's results,
// combined with `op` piece by piece in order; the return value is sum (or max) over the tensors, in order, of result 0. The
// pieces do not depend on the number of threads, so neither do the bits of any result. A tensor of no elements gets op's identity
// (0).
template <int NS, class Body>
double parallel_sums(const std::vector<std::size_t>& offsets, const std::vector<std::size_t>& sizes, Combine op, Body&& body,
                     double* per_tensor) {
    const std::size_t ntensors = sizes.size();
    if (ntensors == 0) return 0.0;
    thread_local std::vector<std::size_t> piece_base;
    thread_local std::vector<double> slots;
    piece_base.assign(ntensors + 1, 0);
    for (std::size_t t = 0; t < ntensors; ++t)
        piece_base[t + 1] = piece_base[t] + detail::n_blocks(offsets.data(), sizes.data(), t);
    slots.assign(piece_base[ntensors] * NS, 0.0);
    const std::size_t total = offsets[ntensors];
    const std::size_t n_blocks = (total + kReduceBlock - 1) / kReduceBlock;
    const int nthreads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(get_num_threads()), n_blocks));
    using Sweep = detail::ReduceSweep<NS, std::remove_reference_t<Body>>;
    // A lambda does not capture a thread_local: the workers get plain pointers.
    const std::size_t per_chunk =
        nthreads <= 1 ? n_blocks : std::max<std::size_t>(1, n_blocks / (static_cast<std::size_t>(nthreads) * kChunksPerThread));
    Sweep sweep{offsets.data(), sizes.data(), piece_base.data(), ntensors, total, per_chunk, slots.data(), &body};
    if (total < kParallelMin || nthreads <= 1) {
        for (std::size_t b = 0; b < n_blocks; ++b) sweep.block(b);
    } else {
        run_chunks((n_blocks + per_chunk - 1) / per_chunk, nthreads, &Sweep::run, &sweep);
    }
    double result = 0.0;
    for (std::size_t t = 0; t < ntensors; ++t) {
        for (int j = 0; j < NS; ++j) {
            double acc = 0.0;
            for (std::size_t k = piece_base[t]; k < piece_base[t + 1]; ++k) acc = detail::combine(op, acc, slots[k * NS + j]);
            if (per_tensor) per_tensor[t * NS + j] = acc;
            if (j == 0) result = detail::combine(op, result, acc);
        }
    }
    return result;
}

}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
