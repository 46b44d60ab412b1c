// Reductions and whole-list operations on gradients, through the one parallel loop:
// the norms of clip_grad_norm_ / get_total_norm and of an optimizer's max_grad_norm, the
// writes of clip_grads_with_norm_ and clip_grad_value_, and MultiSteps' running mean.
// Compiled once per instruction-set target (target.hpp).
//
// Same bits everywhere: every sum is float64, in kLanes running sums (element i of a piece
// goes to lane i % kLanes) added in a fixed tree at the end of the piece; the pieces are
// those of parallel_sums (fixed blocks, whatever the thread count); no FMA contraction.
// So a norm does not depend on the number of threads nor on the instruction set.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "fusedopt/finite.hpp"
#include "fusedopt/mixed.hpp"
#include "fusedopt/parallel.hpp"
#include "fusedopt/types.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {

// Running sums per reduction: enough independent chains to keep a vector unit busy.
inline constexpr int kLanes = 8;

// f(i, k) for every i in [0, n), with k = i % kLanes: in blocks of kLanes, so that each
// lane's chain stays in a register and the compiler vectorizes across the lanes.
template <class F>
inline void for_lanes(std::size_t n, F&& f) {
    std::size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int k = 0; k < kLanes; ++k) f(i + k, k);
    for (int k = 0; i < n; ++i, ++k) f(i, k);
}

// The lanes added in a fixed tree.
inline double lanes_total(const double* v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }

// NaN-propagating maximum of the lanes.
inline double lanes_max(const double* v) {
    double m = v[0];
    for (int k = 1; k < kLanes; ++k) m = nan_max(m, v[k]);
    return m;
}

// sum of x^2 (Square) or |x| (Abs) over x[0..n) in float64, lane i % kLanes per element.
// GCC and Clang get the lanes as two vectors of 4 doubles (the compiler does not
// vectorize a float32 -> float64 sum on its own); the tail, and other compilers, add
// the same lanes one element at a time: the same bits either way.
enum class LaneOp { Square, Abs };

template <LaneOp Op, class T>
double lane_sum(const T* __restrict x, std::size_t n) {
    static_assert(kLanes == 8, "two vectors of 4 lanes");
    double v[kLanes] = {};
    std::size_t i = 0;
#if defined(__GNUC__)
    typedef double D4 __attribute__((vector_size(32)));
    typedef float F4 __attribute__((vector_size(16)));
    typedef unsigned long long U4 __attribute__((vector_size(32)));
    const U4 magnitude = {~0ull >> 1, ~0ull >> 1, ~0ull >> 1, ~0ull >> 1};
    D4 a = {0.0, 0.0, 0.0, 0.0}, b = {0.0, 0.0, 0.0, 0.0};
    for (; i + kLanes <= n; i += kLanes) {
        __builtin_prefetch(x + i + 4096 / sizeof(T));  // a lone read stream: ask 4 KiB ahead
        D4 lo, hi;
        if constexpr (std::is_same_v<T, float>) {
            F4 flo, fhi;
            std::memcpy(&flo, x + i, sizeof flo);
            std::memcpy(&fhi, x + i + 4, sizeof fhi);
            lo = __builtin_convertvector(flo, D4);
            hi = __builtin_convertvector(fhi, D4);
        } else {
            std::memcpy(&lo, x + i, sizeof lo);
            std::memcpy(&hi, x + i + 4, sizeof hi);
        }
        if constexpr (Op == LaneOp::Square) {
            a += lo * lo;
            b += hi * hi;
        } else {
            a += (D4)((U4)lo & magnitude);
            b += (D4)((U4)hi & magnitude);
        }
    }
    for (int k = 0; k < 4; ++k) {
        v[k] = a[k];
        v[k + 4] = b[k];
    }
#endif
    for (int k = 0; i < n; ++i, ++k) {
        const double d = static_cast<double>(x[i]);
        v[k] += Op == LaneOp::Square ? d * d : std::fabs(d);
    }
    return lanes_total(v);
}

// sum |x|^p over x[0..n) in float64 (p = 1, 2 or any p > 0), or max |x| (p = inf).
template <class T>
double piece_norm(const T* __restrict x, std::size_t n, double p) {
    if (p == 2.0) return lane_sum<LaneOp::Square>(x, n);
    if (p == 1.0) return lane_sum<LaneOp::Abs>(x, n);
    double v[kLanes] = {};
    if (std::isinf(p)) {
        for_lanes(n, [&](std::size_t i, int k) { v[k] = nan_max(v[k], std::fabs(static_cast<double>(x[i]))); });
        return lanes_max(v);
    }
    for_lanes(n, [&](std::size_t i, int k) { v[k] += std::pow(std::fabs(static_cast<double>(x[i])), p); });
    return lanes_total(v);
}

// Elements of a half-precision grad widened at a time by grad_norm_sums.
inline constexpr std::size_t kHalfNormBlock = 256;

// The p-norm sums of every tensor's grad: per_tensor[t] (when given) is sum |g_t|^p (max |g_t|
// for p = inf), the result their sum (or max) over the tensors. The norm is its p-th root.
inline double grad_norm_sums(const std::vector<TensorRef>& tensors, const std::vector<std::size_t>& offsets,
                             const std::vector<std::size_t>& sizes, double p, double* per_tensor) {
    const TensorRef* refs = tensors.data();
    return parallel_sums<1>(
        offsets, sizes, std::isinf(p) ? Combine::max : Combine::sum,
        [refs, p](std::size_t t, std::size_t start, std::size_t count, double* out) {
            const TensorRef& r = refs[t];
            if (r.param_type >= kBFloat16) {  // half grads, widened block by block
                float buf[kHalfNormBlock];
                for (std::size_t j = 0; j < count; j += kHalfNormBlock) {
                    const std::size_t n = std::min(kHalfNormBlock, count - j);
                    mixed::widen(r.param_type, r.grad, start + j, n, buf);
                    const double part = piece_norm(static_cast<const float*>(buf), n, p);
                    out[0] = std::isinf(p) ? nan_max(out[0], part) : out[0] + part;
                }
                return;
            }
            out[0] += r.is_double ? piece_norm(static_cast<const double*>(r.grad) + start, count, p)
                                  : piece_norm(static_cast<const float*>(r.grad) + start, count, p);
        },
        per_tensor);
}

// torch.nn.utils.clip_grad_norm_'s factor: max_norm / (norm + 1e-6), at most 1. A norm
// that is not finite (an inf or NaN grad) gives 0, as an infinite one does in torch (where
// a NaN norm would turn every grad into NaN: here only the non-finite grad's stays so).
inline double clip_coefficient(double max_norm, double norm) {
    if (!std::isfinite(norm)) return 0.0;
    const double c = max_norm / (norm + 1e-6);
    return c < 1.0 ? c : 1.0;
}

// optax's scale_by_trust_ratio from an array's sums of squares: coefficient * ||p|| /
// (||u|| + eps), or 1 when either norm is 0 (LAMB and LARS).
inline double trust_ratio(double p_squares, double u_squares, double coefficient, double eps) {
    const double pn = std::sqrt(p_squares), un = std::sqrt(u_squares);
    return (pn == 0.0 || un == 0.0) ? 1.0 : coefficient * pn / (un + eps);
}

// x *= T(a) (scale) or x = min(max(x, T(a)), T(b)) (clamp; NaN stays NaN) over x[0..n).
template <class T>
inline void rewrite_piece(T* __restrict x, std::size_t n, bool clamp, double a, double b) {
    const T lo = static_cast<T>(a), hi = static_cast<T>(b);
    if (clamp) {
        for (std::size_t i = 0; i < n; ++i) x[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
    } else {
        for (std::size_t i = 0; i < n; ++i) x[i] = x[i] * lo;
    }
}

// rewrite_piece on every tensor's `param` array: the grads that clip_grads_with_norm_ /
// clip_grad_value_ write.
inline void rewrite_grads(const std::vector<TensorRef>& tensors, const std::vector<std::size_t>& offsets,
                          const std::vector<std::size_t>& sizes, bool clamp, double a, double b) {
    const TensorRef* refs = tensors.data();
    parallel_pieces(offsets, sizes, [refs, clamp, a, b](std::size_t t, std::size_t start, std::size_t count) {
        if (refs[t].is_double)
            rewrite_piece(static_cast<double*>(refs[t].param) + start, count, clamp, a, b);
        else
            rewrite_piece(static_cast<float*>(refs[t].param) + start, count, clamp, a, b);
    });
}

// MultiSteps' running mean: acc += (g - acc) / count for every tensor (`param` is the
// accumulator, `grad` the micro-batch grad), as optax.MultiSteps; count 1 (a window's
// first grad) copies it. Returns whether every grad was finite (checked in the same sweep).
inline bool accumulate_mean(const std::vector<TensorRef>& tensors, const std::vector<std::size_t>& offsets,
                            const std::vector<std::size_t>& sizes, double count) {
    std::atomic<bool> ok{true};
    const TensorRef* refs = tensors.data();
    parallel_pieces(offsets, sizes, [refs, count, &ok](std::size_t t, std::size_t start, std::size_t n) {
        const TensorRef& r = refs[t];
        auto run = [&](auto* acc, const auto* g) {
            using T = std::remove_const_t<std::remove_pointer_t<decltype(g)>>;
            const T c = static_cast<T>(count);
            T* __restrict a = acc + start;
            const T* __restrict x = g + start;
            if (!all_finite(x, n)) ok.store(false, std::memory_order_relaxed);
            if (count == 1.0)  // the window's first grad: optax's 0 + (g - 0) / 1, without the zeroing pass
                std::memcpy(a, x, n * sizeof(T));
            else
                for (std::size_t i = 0; i < n; ++i) a[i] = a[i] + (x[i] - a[i]) / c;
        };
        if (r.is_double)
            run(static_cast<double*>(r.param), static_cast<const double*>(r.grad));
        else
            run(static_cast<float*>(r.param), static_cast<const float*>(r.grad));
    });
    return ok.load(std::memory_order_relaxed);
}

}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
