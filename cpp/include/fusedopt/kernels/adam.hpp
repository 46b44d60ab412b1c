// Adam and AdamW (one kernel, decoupled weight decay a flag), exactly torch.optim's rule:
//   g = -grad if maximize else grad
//   Adam:  g += weight_decay * p          AdamW:  p *= 1 - lr * weight_decay
//   m = m + (1 - beta1) (g - m);   v = beta2 v + (1 - beta2) g^2
//   amsgrad: v_max = max(v_max, v) and v_max replaces v below (the raw second moment)
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// max_exp_avg_sq exists with amsgrad only.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct Adam {
    static constexpr const char* name = "adam";
    static constexpr std::array hyper{Hyper{"lr"},
                                      Hyper{"betas", 2},
                                      Hyper{"eps"},
                                      Hyper{"weight_decay"},
                                      Hyper{"amsgrad"},
                                      Hyper{"maximize"},
                                      Hyper{"decoupled_weight_decay"}};
    static constexpr std::array state{"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    static constexpr std::array scalars{"step"};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int lr = at(hyper, "lr"), beta1 = at(hyper, "betas", 0), beta2 = at(hyper, "betas", 1),
                             weight_decay = at(hyper, "weight_decay"),
                             decoupled_weight_decay = at(hyper, "decoupled_weight_decay"), eps = at(hyper, "eps"),
                             maximize = at(hyper, "maximize"), exp_avg = at(state, "exp_avg"),
                             exp_avg_sq = at(state, "exp_avg_sq"), max_exp_avg_sq = at(state, "max_exp_avg_sq"),
                             step = at(scalars, "step");
    };
    struct Coef {
        double beta1c, beta2, beta2c, eps, weight_decay, decay, step_size, inv_bc2_sqrt, grad_scale;
        bool decoupled;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double lr = h[Index::lr], beta1 = h[Index::beta1], beta2 = h[Index::beta2];
        const double wd = h[Index::weight_decay];
        const double step = (*scalar[Index::step] += 1.0);
        const double bc1 = 1.0 - std::pow(beta1, step), bc2 = 1.0 - std::pow(beta2, step);
        const bool decoupled = h[Index::decoupled_weight_decay] != 0.0;
        return {1.0 - beta1,
                beta2,
                1.0 - beta2,
                h[Index::eps],
                decoupled ? 0.0 : wd,
                1.0 - lr * wd,
                lr / bc1,
                1.0 / std::sqrt(bc2),
                h[Index::maximize] != 0.0 ? -1.0 : 1.0,
                decoupled && wd != 0.0};
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict m = s[Index::exp_avg];
        T* __restrict v = s[Index::exp_avg_sq];
        T* __restrict vmax = s[Index::max_exp_avg_sq];
        const T b1c = static_cast<T>(c.beta1c), b2 = static_cast<T>(c.beta2), b2c = static_cast<T>(c.beta2c);
        const T eps = static_cast<T>(c.eps), wd = static_cast<T>(c.weight_decay), decay = static_cast<T>(c.decay);
        const T step_size = static_cast<T>(c.step_size), inv_bc2 = static_cast<T>(c.inv_bc2_sqrt);
        const T grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto l2, auto decoupled, auto amsgrad) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = grad_scale * g[i];
                    T pi = p[i];
                    if constexpr (l2) gi = gi + wd * pi;
                    if constexpr (decoupled) pi = pi * decay;
                    const T mi = m[i] + b1c * (gi - m[i]);
                    T vi = b2 * v[i] + b2c * (gi * gi);
                    m[i] = mi;
                    v[i] = vi;
                    if constexpr (amsgrad) {
                        vi = nan_max(vmax[i], vi);
                        vmax[i] = vi;
                    }
                    const T denom = std::sqrt(vi) * inv_bc2 + eps;
                    p[i] = pi - step_size * (mi / denom);
                }
            },
            c.weight_decay != 0.0, c.decoupled, vmax != nullptr);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
