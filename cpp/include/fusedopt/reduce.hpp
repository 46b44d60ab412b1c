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

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "fusedopt/finite.hpp"
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
    for (int k = 1; k < kLanes; ++k) m = (m > v[k] || m != m) ? m : v[k];
    return m;
}

// sum |x|^p over x[0..n) in float64 (p = 1, 2 or any p > 0), or max |x| (p = inf).
template <class T>
double piece_norm(const T* __restrict x, std::size_t n, double p) {
    double v[kLanes] = {};
    if (p == 2.0) {
        for_lanes(n, [&](std::size_t i, int k) {
            const double a = static_cast<double>(x[i]);
            v[k] += a * a;
        });
    } else if (p == 1.0) {
        for_lanes(n, [&](std::size_t i, int k) { v[k] += std::fabs(static_cast<double>(x[i])); });
    } else if (std::isinf(p)) {
        for_lanes(n, [&](std::size_t i, int k) {
            const double a = std::fabs(static_cast<double>(x[i]));
            v[k] = (v[k] > a || v[k] != v[k]) ? v[k] : a;
        });
        return lanes_max(v);
    } else {
        for_lanes(n, [&](std::size_t i, int k) { v[k] += std::pow(std::fabs(static_cast<double>(x[i])), p); });
    }
    return lanes_total(v);
}

// The p-norm sums of every tensor's grad: per_tensor[t] (when given) is sum |g_t|^p (max |g_t|
// for p = inf), the result their sum (or max) over the tensors. The norm is its p-th root.
inline double grad_norm_sums(const std::vector<TensorRef>& tensors, const std::vector<std::size_t>& offsets,
                             const std::vector<std::size_t>& sizes, double p, double* per_tensor) {
    const TensorRef* refs = tensors.data();
    return parallel_sums<1>(
        offsets, sizes, std::isinf(p) ? Combine::max : Combine::sum,
        [refs, p](std::size_t t, std::size_t start, std::size_t count, double* out) {
            const TensorRef& r = refs[t];
            out[0] = r.is_double ? piece_norm(static_cast<const double*>(r.grad) + start, count, p)
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
// first grad) copies it. Returns whether every
// grad was finite (checked in the same sweep).
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

// Calls f(g_used, offset, m) over [0, count) of a grad: the grad itself when scale is 1,
// else sub-blocks of it multiplied by T(scale) in a small buffer (as torch's clip would
// have written them), so that a kernel folds the clip in without writing the grads.
template <class T, class F>
inline void with_scaled_grad(const T* g, std::size_t count, double scale, F&& f) {
    if (scale == 1.0) {
        f(g, std::size_t{0}, count);
        return;
    }
    constexpr std::size_t kBuf = 512;
    alignas(64) T buf[kBuf];
    const T s = static_cast<T>(scale);
    for (std::size_t off = 0; off < count; off += kBuf) {
        const std::size_t m = count - off < kBuf ? count - off : kBuf;
        for (std::size_t i = 0; i < m; ++i) buf[i] = g[off + i] * s;
        f(static_cast<const T*>(buf), off, m);
    }
}

}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
