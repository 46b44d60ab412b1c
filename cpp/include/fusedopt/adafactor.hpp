// Adafactor (torch.optim.Adafactor) for one parameter, in a fixed number of passes and
// without any temporary of the parameter's size.
//
// A parameter of two or more dimensions is B matrices of R x C (its last two dims; B the
// product of the others), C-contiguous; its second moment is factored into row_var
// (B x R) and col_var (B x C). torch builds the B x R x C outer product row_var @ col_var
// and five more full-size temporaries; here the estimate v[r, c] = row_var[r] *
// col_var[c] / mean(row_var) is recomputed element by element where it is used:
//
//   pass 1 (parallel, read g and p): sum of p^2, each row's sum of g^2, and per row block
//          a partial vector of column sums of g^2;
//   (serial, small) the column partials added in block order, alpha from RMS(p), the
//          row_var / col_var lerp, each matrix's clamped mean of row_var;
//   pass 2 (parallel, read g): the sum of update^2, update = g / sqrt(max(v, eps1^2));
//   pass 3 (parallel, read g and p, write p): p = p * (1 - lr * wd) - alpha / denom * update.
//
// Same bits on any number of threads: the row blocks depend on the shape only (never on
// the thread count); every sum is float64, each row's in kLanes running sums added in a
// fixed tree (reduce.hpp), the blocks' partials added in block order. The element-wise
// arithmetic is torch's, in the parameter's dtype and in its order ((row * col) / mean,
// clamp, 1 / sqrt, * g), so that only the reductions (float64 here, the dtype in torch)
// tell the two apart.
//
// A parameter of 0 or 1 dims keeps an unfactored `variance` of its own shape: pass 1 also
// lerps it and sums update^2 (parallel_sums' fixed blocks), pass 2 writes p.
//
// Compiled once per instruction-set target with the other element loops (target.cpp: the
// table's `adafactor` entry); the same bits on every target (no FMA contraction; sqrt and
// division are correctly rounded). Extra memory: the row sums (B x R doubles) and the
// column partials (at most 64 per matrix and at most 1/8 of the rows' count: B x min(64,
// R/8) x C doubles), about 1/8 of the parameter's bytes at most for float32.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "fusedopt/parallel.hpp"
#include "fusedopt/reduce.hpp"
#include "fusedopt/types.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace adafactor {

// The step's numbers (types.hpp), computed once in double by the caller (as torch's
// Python code computes the step-dependent ones).
using Hyper = AdafactorHyper;

// torch's lerp (aten/src/ATen/native/Lerp.h), in the dtype T: self + w * (end - self) for
// |w| < 0.5, else end - (end - self) * (1 - w) (exact at w = 0 and w = 1). Written as
// base + coef * (end - self) with a choice made once per step, so that a loop of lerps
// vectorizes: (1 - w) and (w - 1) round to the same magnitude.
template <class T>
struct Lerp {
    bool from_self;
    T coef;
    explicit Lerp(T w) : from_self(std::fabs(w) < T(0.5)), coef(from_self ? w : w - T(1)) {}
    T operator()(T self, T end) const { return (from_self ? self : end) + coef * (end - self); }
};

// Python's max(a, b) and min(a, b) on floats, as torch's Python code calls them (a NaN b
// gives a for max(a, b) and min(a, b)).
inline double py_max(double a, double b) { return b > a ? b : a; }
inline double py_min(double a, double b) { return b < a ? b : a; }

// torch's clamp_(min=lo): NaN stays NaN.
template <class T>
inline T clamp_min(T x, T lo) {
    return x < lo ? lo : x;
}

// f(k) for every block k in [0, n): on the calling thread for a small step, else shared
// out over the pool. Blocks write disjoint outputs, so the split changes no bit.
template <class F>
void for_blocks(std::size_t n, std::size_t elements, F& f) {
    const int nthreads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(get_num_threads()), n));
    if (elements < kParallelMin || nthreads <= 1) {
        for (std::size_t k = 0; k < n; ++k) f(k);
        return;
    }
    struct Ctx {
        F* f;
        std::size_t n, per;
        static void run(void* self, std::size_t chunk) {
            const Ctx& c = *static_cast<const Ctx*>(self);
            for (std::size_t k = chunk * c.per; k < std::min(c.n, (chunk + 1) * c.per); ++k) (*c.f)(k);
        }
    };
    const std::size_t per = std::max<std::size_t>(1, n / (static_cast<std::size_t>(nthreads) * kChunksPerThread));
    Ctx ctx{&f, n, per};
    run_chunks((n + per - 1) / per, nthreads, &Ctx::run, &ctx);
}

// Rows per block of an R x C matrix: about kReduceBlock elements or more, at least 8 rows
// (the column partials then cost at most 1/8 of the matrix), at most 64 blocks per matrix.
// A function of the shape only.
inline std::size_t rows_per_block(std::size_t R, std::size_t C) {
    std::size_t rows = std::max<std::size_t>({(kReduceBlock + C - 1) / std::max<std::size_t>(C, 1), 8, (R + 63) / 64});
    return std::max<std::size_t>(1, std::min(rows, R));
}

// The update of one element: g / sqrt(max(v, eps1^2)) with v = (rv * cv) / mean, as
// torch computes it (var_estimate.clamp_(min=eps1 * eps1).rsqrt_().mul_(grad)).
template <class T>
inline T factored_update(T rv, T cv, T mean, T eps_sq, T g) {
    const T v = clamp_min((rv * cv) / mean, eps_sq);
    return (T(1) / std::sqrt(v)) * g;
}

// p = p * decay (when weight decay is on), then p + step * u: for float32 in double and
// rounded once, as torch's fused multiply-add does (add_(update, alpha=step)).
template <class T>
inline T apply(T p, T decay, bool decays, T step, T u) {
    const T pw = decays ? p * decay : p;
    if constexpr (sizeof(T) == 4)
        return static_cast<T>(static_cast<double>(pw) + static_cast<double>(step) * static_cast<double>(u));
    else
        return pw + step * u;
}

// torch's alpha = max(eps2, RMS(p)) * rho_t and denom = max(1, RMS(update) / d), from the sums.
inline double alpha_of(const Hyper& h, double p_squares, double numel) {
    return py_max(h.eps2, std::sqrt(p_squares) / std::sqrt(numel)) * h.rho;
}
inline double denom_of(const Hyper& h, double u_squares, double numel) {
    return py_max(1.0, std::sqrt(u_squares) / (std::sqrt(numel) * h.d));
}

// One step of a factored parameter: B matrices of R x C (p, g: B*R*C; row_var: B*R;
// col_var: B*C), all C-contiguous and of dtype T.
template <class T>
void step_factored(T* __restrict p, const T* __restrict g, T* __restrict row_var, T* __restrict col_var, std::size_t B,
                   std::size_t R, std::size_t C, const Hyper& h) {
    const std::size_t numel = B * R * C;
    const std::size_t rpb = rows_per_block(R, C);
    const std::size_t nb = R == 0 ? 0 : (R + rpb - 1) / rpb;  // blocks per matrix
    const std::size_t blocks = B * nb;
    std::vector<double> row_sum(B * R), col_part(blocks * C), p_part(blocks), u_part(blocks);
    auto rows_of = [&](std::size_t k, std::size_t& b, std::size_t& r0, std::size_t& r1) {
        b = k / nb;
        r0 = (k % nb) * rpb;
        r1 = std::min(R, r0 + rpb);
    };

    // pass 1: sums of p^2, rows and column partials of g^2
    auto sums = [&](std::size_t k) {
        std::size_t b, r0, r1;
        rows_of(k, b, r0, r1);
        double* __restrict cp = col_part.data() + k * C;
        // the block's rows are contiguous: one sum of p^2 over them
        p_part[k] = lane_sum<LaneOp::Square>(p + (b * R + r0) * C, (r1 - r0) * C);
        for (std::size_t r = r0; r < r1; ++r) {
            const T* __restrict gr = g + (b * R + r) * C;
            double lanes[kLanes] = {};
            std::size_t c = 0;
            for (; c + kLanes <= C; c += kLanes)
                for (int l = 0; l < kLanes; ++l) {
                    const double x = static_cast<double>(gr[c + l]);
                    const double s = x * x;
                    cp[c + l] += s;
                    lanes[l] += s;
                }
            for (int l = 0; c < C; ++c, ++l) {
                const double x = static_cast<double>(gr[c]);
                cp[c] += x * x;
                lanes[l] += x * x;
            }
            row_sum[b * R + r] = lanes_total(lanes);
        }
    };
    for_blocks(blocks, numel, sums);

    // serial: the partials in block order, alpha, the lerps, the means
    double p_squares = 0.0;
    for (std::size_t k = 0; k < blocks; ++k) p_squares += p_part[k];
    const double alpha = alpha_of(h, p_squares, static_cast<double>(numel));
    const Lerp<T> lerp(static_cast<T>(h.weight));
    const T eps1 = static_cast<T>(h.eps1);
    const T eps_sq = static_cast<T>(h.eps1 * h.eps1);
    std::vector<T> mean(B);
    for (std::size_t b = 0; b < B; ++b) {
        T* rv = row_var + b * R;
        double total = 0.0;
        for (std::size_t r = 0; r < R; ++r) {
            rv[r] = lerp(rv[r], static_cast<T>(row_sum[b * R + r] / static_cast<double>(C)));
            total += static_cast<double>(rv[r]);
        }
        mean[b] = clamp_min(static_cast<T>(total / static_cast<double>(R)), eps1);
        T* cv = col_var + b * C;
        const double* first = col_part.data() + b * nb * C;
        for (std::size_t c = 0; c < C; ++c) {
            double s = 0.0;
            for (std::size_t j = 0; j < nb; ++j) s += first[j * C + c];
            cv[c] = lerp(cv[c], static_cast<T>(s / static_cast<double>(R)));
        }
    }

    // pass 2: the sum of update^2
    auto update_sums = [&](std::size_t k) {
        std::size_t b, r0, r1;
        rows_of(k, b, r0, r1);
        const T* __restrict cv = col_var + b * C;
        const T m = mean[b];
        double lanes[kLanes] = {};  // over the block's rows: element c of a row goes to lane c % kLanes
        for (std::size_t r = r0; r < r1; ++r) {
            const T rv = row_var[b * R + r];
            const T* __restrict gr = g + (b * R + r) * C;
            std::size_t c = 0;
            for (; c + kLanes <= C; c += kLanes)
                for (int l = 0; l < kLanes; ++l) {
                    const double u = static_cast<double>(factored_update(rv, cv[c + l], m, eps_sq, gr[c + l]));
                    lanes[l] += u * u;
                }
            for (int l = 0; c < C; ++c, ++l) {
                const double u = static_cast<double>(factored_update(rv, cv[c], m, eps_sq, gr[c]));
                lanes[l] += u * u;
            }
        }
        u_part[k] = lanes_total(lanes);
    };
    for_blocks(blocks, numel, update_sums);
    double u_squares = 0.0;
    for (std::size_t k = 0; k < blocks; ++k) u_squares += u_part[k];
    const double denom = denom_of(h, u_squares, static_cast<double>(numel));

    // pass 3: the write
    const T step = static_cast<T>((h.maximize ? alpha : -alpha) / denom);
    const bool decays = h.weight_decay != 0.0;
    const T decay = static_cast<T>(1.0 - h.lr * h.weight_decay);
    auto write = [&](std::size_t k) {
        std::size_t b, r0, r1;
        rows_of(k, b, r0, r1);
        const T* __restrict cv = col_var + b * C;
        const T m = mean[b];
        for (std::size_t r = r0; r < r1; ++r) {
            const T rv = row_var[b * R + r];
            const std::size_t at = (b * R + r) * C;
            const T* __restrict gr = g + at;
            T* __restrict pr = p + at;
            for (std::size_t c = 0; c < C; ++c)
                pr[c] = apply(pr[c], decay, decays, step, factored_update(rv, cv[c], m, eps_sq, gr[c]));
        }
    };
    for_blocks(blocks, numel, write);
}

// One step of an unfactored parameter (0 or 1 dims): p, g, variance of n elements.
template <class T>
void step_unfactored(T* __restrict p, const T* __restrict g, T* __restrict variance, std::size_t n, const Hyper& h) {
    const std::vector<std::size_t> sizes{n};
    std::vector<std::size_t> offsets;
    build_offsets(sizes, offsets);
    const Lerp<T> lerp(static_cast<T>(h.weight));
    const T eps_sq = static_cast<T>(h.eps1 * h.eps1);
    auto update = [eps_sq](T v, T x) { return (T(1) / std::sqrt(clamp_min(v, eps_sq))) * x; };
    // pass 1: sum of p^2; the variance lerp and the sum of update^2
    double sums[2];
    parallel_sums<2>(
        offsets, sizes, Combine::sum,
        [&](std::size_t, std::size_t start, std::size_t count, double* out) {
            out[0] += lane_sum<LaneOp::Square>(p + start, count);
            const T* __restrict x = g + start;
            T* __restrict v = variance + start;
            const Lerp<T> lp = lerp;  // a copy the compiler knows no store changes
            double lanes[kLanes] = {};
            std::size_t i = 0;
            for (; i + kLanes <= count; i += kLanes)
                for (int l = 0; l < kLanes; ++l) {
                    const T vi = lp(v[i + l], x[i + l] * x[i + l]);
                    v[i + l] = vi;
                    const double u = static_cast<double>(update(vi, x[i + l]));
                    lanes[l] += u * u;
                }
            for (int l = 0; i < count; ++i, ++l) {
                const T vi = lp(v[i], x[i] * x[i]);
                v[i] = vi;
                const double u = static_cast<double>(update(vi, x[i]));
                lanes[l] += u * u;
            }
            out[1] += lanes_total(lanes);
        },
        sums);
    const double alpha = alpha_of(h, sums[0], static_cast<double>(n));
    const double denom = denom_of(h, sums[1], static_cast<double>(n));
    // pass 2: the write
    const T step = static_cast<T>((h.maximize ? alpha : -alpha) / denom);
    const bool decays = h.weight_decay != 0.0;
    const T decay = static_cast<T>(1.0 - h.lr * h.weight_decay);
    parallel_pieces(offsets, sizes, [&](std::size_t, std::size_t start, std::size_t count) {
        T* __restrict pi = p + start;
        const T* __restrict x = g + start;
        const T* __restrict v = variance + start;
        for (std::size_t i = 0; i < count; ++i) pi[i] = apply(pi[i], decay, decays, step, update(v[i], x[i]));
    });
}

// The TargetTable's entry (types.hpp: AdafactorFn): the dtype switch.
inline void step(void* p, const void* g, void* row_var, void* col_var, std::size_t B, std::size_t R, std::size_t C,
                 bool is_double, const Hyper& h) {
    if (col_var) {
        if (is_double)
            step_factored(static_cast<double*>(p), static_cast<const double*>(g), static_cast<double*>(row_var),
                          static_cast<double*>(col_var), B, R, C, h);
        else
            step_factored(static_cast<float*>(p), static_cast<const float*>(g), static_cast<float*>(row_var),
                          static_cast<float*>(col_var), B, R, C, h);
    } else if (is_double) {
        step_unfactored(static_cast<double*>(p), static_cast<const double*>(g), static_cast<double*>(row_var), B * R * C, h);
    } else {
        step_unfactored(static_cast<float*>(p), static_cast<const float*>(g), static_cast<float*>(row_var), B * R * C, h);
    }
}

}  // namespace adafactor
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
