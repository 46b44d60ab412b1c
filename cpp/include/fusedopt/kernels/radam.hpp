// RAdam: Adam with a rectified adaptive learning rate (Liu et al., 2020), exactly
// torch.optim.RAdam's rule:
//   g = -grad if maximize else grad
//   RAdam:  g += weight_decay * p          decoupled:  p *= 1 - lr * weight_decay
//   m = m + (1 - beta1) (g - m);   v = beta2 v + (1 - beta2) g^2
//   rho_inf = 2 / (1 - beta2) - 1;   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
//   rho_t > 5:  r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
//               p -= lr r_t sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)
//   otherwise:  p -= lr / (1 - beta1^t) * m
// eps is added before the bias correction of v (unlike Adam). The switch depends on
// t and beta2 only: it is taken once per tensor per step, in prepare().
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct RAdam {
    static constexpr const char* name = "radam";
    static constexpr std::array hyper{
        Hyper{"lr"}, Hyper{"betas", 2}, Hyper{"eps"}, Hyper{"weight_decay"}, Hyper{"decoupled_weight_decay"}, Hyper{"maximize"}};
    static constexpr std::array state{"exp_avg", "exp_avg_sq"};
    static constexpr std::array scalars{"step"};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int lr = at(hyper, "lr"), beta1 = at(hyper, "betas", 0), beta2 = at(hyper, "betas", 1),
                             weight_decay = at(hyper, "weight_decay"),
                             decoupled_weight_decay = at(hyper, "decoupled_weight_decay"), eps = at(hyper, "eps"),
                             maximize = at(hyper, "maximize"), exp_avg = at(state, "exp_avg"),
                             exp_avg_sq = at(state, "exp_avg_sq"), step = at(scalars, "step");
    };
    struct Coef {
        double beta1c, beta2, beta2c, eps, weight_decay, decay, step_size, grad_scale;
        bool decoupled, rectified;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double lr = h[Index::lr], beta1 = h[Index::beta1], beta2 = h[Index::beta2];
        const double wd = h[Index::weight_decay];
        const double step = (*scalar[Index::step] += 1.0);
        const double bc1 = 1.0 - std::pow(beta1, step), bc2 = 1.0 - std::pow(beta2, step);
        const double rho_inf = 2.0 / (1.0 - beta2) - 1.0;
        const double rho_t = rho_inf - 2.0 * step * std::pow(beta2, step) / bc2;
        const bool rectified = rho_t > 5.0;
        double step_size = lr / bc1;
        if (rectified) {
            const double rect = std::sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t));
            step_size *= rect * std::sqrt(bc2);
        }
        const bool decoupled = h[Index::decoupled_weight_decay] != 0.0;
        return {1.0 - beta1,
                beta2,
                1.0 - beta2,
                h[Index::eps],
                decoupled ? 0.0 : wd,
                1.0 - lr * wd,
                step_size,
                h[Index::maximize] != 0.0 ? -1.0 : 1.0,
                decoupled && wd != 0.0,
                rectified};
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict m = s[Index::exp_avg];
        T* __restrict v = s[Index::exp_avg_sq];
        const T b1c = static_cast<T>(c.beta1c), b2 = static_cast<T>(c.beta2), b2c = static_cast<T>(c.beta2c);
        const T eps = static_cast<T>(c.eps), wd = static_cast<T>(c.weight_decay), decay = static_cast<T>(c.decay);
        const T step_size = static_cast<T>(c.step_size), grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto l2, auto decoupled, auto rectified) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = grad_scale * g[i];
                    T pi = p[i];
                    if constexpr (l2) gi = gi + wd * pi;
                    if constexpr (decoupled) pi = pi * decay;
                    const T mi = m[i] + b1c * (gi - m[i]);
                    const T vi = b2 * v[i] + b2c * (gi * gi);
                    m[i] = mi;
                    v[i] = vi;
                    if constexpr (rectified)
                        p[i] = pi - step_size * (mi / (std::sqrt(vi) + eps));
                    else
                        p[i] = pi - step_size * mi;
                }
            },
            c.weight_decay != 0.0, c.decoupled, c.rectified);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
