// AdamWScheduleFree (Defazio et al. 2024, "The Road Less Scheduled"), exactly the
// `schedulefree` package's (1.4.1) foreach step, memory-efficient form: the parameter
// holds y (train mode), the state is z and exp_avg_sq. With lr and ckp1 from
// schedulefree.hpp and k the group's step count before this step:
//   v = v * beta2;  v = v + ((1 - beta2) * g) * g
//   g = g / (sqrt(v * (1 / (1 - beta2^(k+1)))) + eps)
//   g = g + weight_decay * y                    (the decay taken at y, if weight_decay != 0)
//   y = lerp(y, z, ckp1)
//   y = y + (lr * (beta1 * (1 - ckp1) - 1)) * g
//   z = z - lr * g
// z starts as a copy of the parameter at its first step (the Python side copies it).
// The package divides v by the bias correction; this multiplies by its reciprocal (one
// division per element fewer: the step stays memory-bound on one thread; as the Adam
// kernel does), so the bits may differ from the package's in the last place.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"
#include "fusedopt/kernels/schedulefree.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct AdamWScheduleFree {
    static constexpr const char* name = "adamw_schedulefree";
    static constexpr std::array hyper{
        Hyper{"lr"}, Hyper{"betas", 2},        Hyper{"eps"}, Hyper{"weight_decay"}, Hyper{"warmup_steps"},
        Hyper{"r"},  Hyper{"weight_lr_power"}, Hyper{"k"},   Hyper{"lr_max"},       Hyper{"weight_sum"}};
    static constexpr std::array state{"z", "exp_avg_sq"};
    static constexpr std::array<const char*, 0> scalars{};
    struct Index {
        static constexpr int lr = at(hyper, "lr"), beta1 = at(hyper, "betas", 0), beta2 = at(hyper, "betas", 1),
                             eps = at(hyper, "eps"), weight_decay = at(hyper, "weight_decay"),
                             warmup_steps = at(hyper, "warmup_steps"), r = at(hyper, "r"),
                             weight_lr_power = at(hyper, "weight_lr_power"), k = at(hyper, "k"), lr_max = at(hyper, "lr_max"),
                             weight_sum = at(hyper, "weight_sum"), z = at(state, "z"), exp_avg_sq = at(state, "exp_avg_sq");
    };
    struct Coef {
        double ckp1, y_coef, neg_lr, beta2, one_minus_beta2, inv_bias_correction2, eps, weight_decay, grad_scale;
    };

    static Coef prepare(const double* h, double* const* /*scalar*/, void* const* /*state*/) {
        const double k = h[Index::k], beta2 = h[Index::beta2];
        const ScheduleFreeCoef c = schedulefree_coef(h[Index::lr], h[Index::warmup_steps], h[Index::r], h[Index::weight_lr_power],
                                                     k, h[Index::lr_max], h[Index::weight_sum]);
        return {c.ckp1,      c.lr * (h[Index::beta1] * (1.0 - c.ckp1) - 1.0), -c.lr,         beta2,
                1.0 - beta2, 1.0 / (1.0 - std::pow(beta2, k + 1.0)),          h[Index::eps], h[Index::weight_decay],
                1.0};
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P y, G g, T* const* s, std::size_t n) {
        T* __restrict z = s[Index::z];
        T* __restrict v = s[Index::exp_avg_sq];
        const T w = static_cast<T>(c.ckp1), one_minus_w = T(1) - w;
        const T y_coef = static_cast<T>(c.y_coef), neg_lr = static_cast<T>(c.neg_lr);
        const T beta2 = static_cast<T>(c.beta2), omb2 = static_cast<T>(c.one_minus_beta2);
        const T inv_bc2 = static_cast<T>(c.inv_bias_correction2), eps = static_cast<T>(c.eps);
        const T wd = static_cast<T>(c.weight_decay), grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto l2, auto big) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = grad_scale * g[i];
                    const T yi = y[i], zi = z[i];
                    T vi = v[i] * beta2;
                    vi = vi + (omb2 * gi) * gi;
                    v[i] = vi;
                    gi = gi / (std::sqrt(vi * inv_bc2) + eps);
                    if constexpr (l2) gi = gi + wd * yi;
                    const T yn = lerp_elem<big>(yi, zi, w, one_minus_w);
                    y[i] = yn + y_coef * gi;
                    z[i] = zi + neg_lr * gi;
                }
            },
            c.weight_decay != 0.0, std::fabs(w) >= T(0.5));
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
