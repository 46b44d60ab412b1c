// AdamHD: Adam whose learning rate learns itself by hypergradient descent (Baydin et al.
// 2018), as the authors' hypergrad/adam_hd.py, with one learning rate per param group:
//   g = -grad if maximize else grad;   g += weight_decay * p
//   u_(t-1) = m_(t-1) / (sqrt(v_(t-1)) + eps) * sqrt(1 - beta2^(t-1)) / (1 - beta1^(t-1))
//   lr = lr + hypergrad_lr * <g, u_(t-1)>     (t > 1; for each tensor of the group, in order)
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   p = p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)
// Every tensor of the group steps with the group's new lr (the paper's hypergradient of the
// group's rate; the authors' loop changes lr between tensors). The sums pass takes the dot
// products (each product in the tensor's type, summed in float64: the same bits on any
// thread count) and writes the new moments; the update pass reads them. The new rate is
// written back to group["lr"].
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"
#include "fusedopt/lane_sums.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct AdamHD {
    static constexpr const char* name = "adam_hd";
    static constexpr std::array hyper{Hyper{"lr"},           Hyper{"betas", 2},     Hyper{"eps"},
                                      Hyper{"weight_decay"}, Hyper{"hypergrad_lr"}, Hyper{"maximize"}};
    static constexpr std::array state{"exp_avg", "exp_avg_sq"};
    static constexpr std::array scalars{"step"};
    static constexpr std::array group_values{"lr"};
    struct Index {
        static constexpr int lr = at(hyper, "lr"), beta1 = at(hyper, "betas", 0), beta2 = at(hyper, "betas", 1),
                             eps = at(hyper, "eps"), weight_decay = at(hyper, "weight_decay"),
                             hypergrad_lr = at(hyper, "hypergrad_lr"), maximize = at(hyper, "maximize"),
                             exp_avg = at(state, "exp_avg"), exp_avg_sq = at(state, "exp_avg_sq"), step = at(scalars, "step"),
                             group_lr = at(group_values, "lr");
    };
    struct Coef {
        double beta1, beta1c, beta2, beta2c, eps, weight_decay, hd_factor, bc_ratio, step_size, grad_scale;
        bool has_prev;
    };
    static constexpr int n_sums = 1;  // <g, m / (sqrt(v) + eps)> with the moments before the step

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double beta1 = h[Index::beta1], beta2 = h[Index::beta2];
        const double step = (*scalar[Index::step] += 1.0);
        Coef c{};
        c.beta1 = beta1;
        c.beta1c = 1.0 - beta1;
        c.beta2 = beta2;
        c.beta2c = 1.0 - beta2;
        c.eps = h[Index::eps];
        c.weight_decay = h[Index::weight_decay];
        c.has_prev = step > 1.0;
        c.hd_factor = c.has_prev ? std::sqrt(1.0 - std::pow(beta2, step - 1.0)) / (1.0 - std::pow(beta1, step - 1.0)) : 0.0;
        c.bc_ratio = std::sqrt(1.0 - std::pow(beta2, step)) / (1.0 - std::pow(beta1, step));
        c.step_size = 0.0;
        c.grad_scale = h[Index::maximize] != 0.0 ? -1.0 : 1.0;
        return c;
    }

    // Elements [0, n) of the sums pass: the new moments, and dot[i] = g_i m_i / (sqrt(v_i) + eps)
    // with the moments before the step.
    template <class T, bool L2>
    static void sums_chunk(const Coef& c, const T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                           T* __restrict dot, std::size_t n) {
        const T gs = static_cast<T>(c.grad_scale), wd = static_cast<T>(c.weight_decay), eps = static_cast<T>(c.eps);
        const T b1 = static_cast<T>(c.beta1), b1c = static_cast<T>(c.beta1c), b2 = static_cast<T>(c.beta2),
                b2c = static_cast<T>(c.beta2c);
        for (std::size_t i = 0; i < n; ++i) {
            T gi = gs * g[i];
            if constexpr (L2) gi = gi + wd * p[i];
            const T mi = m[i], vi = v[i];
            dot[i] = gi * (mi / (std::sqrt(vi) + eps));
            m[i] = b1 * mi + b1c * gi;
            v[i] = b2 * vi + b2c * (gi * gi);
        }
    }

    // The hypergradient's dot product with the moments before the step, and the new moments
    // (written here: the update pass then reads m and v, not the grad).
    template <class T>
    static void sums(const Coef& c, const T* p, const T* g, T* const* s, std::size_t n, double* out) {
        T* m = s[Index::exp_avg];
        T* v = s[Index::exp_avg_sq];
        double h[1][kLanes] = {};
        const bool l2 = c.weight_decay != 0.0;
        chunked_lane_sums<1, T>(n, h, [&](std::size_t i, std::size_t len, T* dot) {
            if (l2)
                sums_chunk<T, true>(c, p + i, g + i, m + i, v + i, dot, len);
            else
                sums_chunk<T, false>(c, p + i, g + i, m + i, v + i, dot, len);
        });
        if (c.has_prev) out[0] += lanes_total(h[0]);
    }

    static void combine(Coef* coefs, const double* totals, const TensorRef* refs, std::size_t n, const GroupValues& gv) {
        constexpr int nv = static_cast<int>(group_values.size());
        for (std::size_t t = 0; t < n; ++t) {
            if (!coefs[t].has_prev) continue;
            double& lr = gv.values[refs[t].group * nv + Index::group_lr];
            const double h = totals[t] * coefs[t].hd_factor;
            lr = lr + refs[t].hyper[Index::hypergrad_lr] * h;
        }
        for (std::size_t t = 0; t < n; ++t)
            coefs[t].step_size = gv.values[refs[t].group * nv + Index::group_lr] * coefs[t].bc_ratio;
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G /*g*/, T* const* s, std::size_t n) {
        const T* __restrict m = s[Index::exp_avg];
        const T* __restrict v = s[Index::exp_avg_sq];
        const T eps = static_cast<T>(c.eps), step = static_cast<T>(-c.step_size);
        for (std::size_t i = 0; i < n; ++i) p[i] = p[i] + step * (m[i] / (std::sqrt(v[i]) + eps));
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
