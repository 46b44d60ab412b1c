// Adam and AdamW (one kernel, decoupled weight decay a flag), exactly torch.optim's rule:
//   g = -grad if maximize else grad
//   Adam:  g += weight_decay * p          AdamW:  p *= 1 - lr * weight_decay
//   m = m + (1 - beta1) (g - m);   v = beta2 v + (1 - beta2) g^2
//   amsgrad: v_max = max(v_max, v) and v_max replaces v below (the raw second moment)
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// hyper: lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled.
// state: exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad only). scalar: step.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt::kernels {

struct Adam {
    static constexpr int n_hyper = 8, n_state = 3, n_scalar = 1;
    struct Coef {
        double beta1c, beta2, beta2c, eps, weight_decay, decay, step_size, inv_bc2_sqrt, sign;
        bool decoupled;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double lr = h[0], beta1 = h[1], beta2 = h[2], wd = h[4];
        const double step = (*scalar[0] += 1.0);
        const double bc1 = 1.0 - std::pow(beta1, step), bc2 = 1.0 - std::pow(beta2, step);
        const bool decoupled = h[7] != 0.0;
        return {1.0 - beta1, beta2, 1.0 - beta2, h[3], decoupled ? 0.0 : wd, 1.0 - lr * wd,
                lr / bc1, 1.0 / std::sqrt(bc2), h[6] != 0.0 ? -1.0 : 1.0, decoupled && wd != 0.0};
    }

    template <class T>
    static void update(const Coef& c, T* __restrict p, const T* __restrict g, T* const* s, std::size_t n) {
        T* __restrict m = s[0];
        T* __restrict v = s[1];
        T* __restrict vmax = s[2];
        const T b1c = static_cast<T>(c.beta1c), b2 = static_cast<T>(c.beta2), b2c = static_cast<T>(c.beta2c);
        const T eps = static_cast<T>(c.eps), wd = static_cast<T>(c.weight_decay), decay = static_cast<T>(c.decay);
        const T step_size = static_cast<T>(c.step_size), inv_bc2 = static_cast<T>(c.inv_bc2_sqrt);
        const T sign = static_cast<T>(c.sign);
        with_flags(
            [&](auto l2, auto decoupled, auto amsgrad) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = sign * g[i];
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

}  // namespace fusedopt::kernels
