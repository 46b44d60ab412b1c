// Adamax, exactly torch.optim.Adamax's rule (eps inside the maximum):
//   g = -grad if maximize else grad;  g += weight_decay * p
//   m = m + (1 - beta1) * (g - m)
//   u = max(beta2 * u, |g| + eps)          (NaN-propagating, as torch.maximum)
//   p -= lr / (1 - beta1^t) * m / u
// hyper: lr, beta1, beta2, eps, weight_decay, maximize. state: exp_avg (m), exp_inf (u).
// scalar: step.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt::kernels {

struct Adamax {
    static constexpr int n_hyper = 6, n_state = 2, n_scalar = 1;
    struct Coef {
        double clr, beta1c, beta2, eps, weight_decay, sign;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double lr = h[0], beta1 = h[1];
        const double step = (*scalar[0] += 1.0);
        return {lr / (1.0 - std::pow(beta1, step)), 1.0 - beta1, h[2], h[3], h[4], h[5] != 0.0 ? -1.0 : 1.0};
    }

    template <class T>
    static void update(const Coef& c, T* __restrict p, const T* __restrict g, T* const* s, std::size_t n) {
        T* __restrict m = s[0];
        T* __restrict u = s[1];
        const T clr = static_cast<T>(c.clr), b1c = static_cast<T>(c.beta1c), b2 = static_cast<T>(c.beta2);
        const T eps = static_cast<T>(c.eps), wd = static_cast<T>(c.weight_decay), sign = static_cast<T>(c.sign);
        with_flags(
            [&](auto decay) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = sign * g[i];
                    if constexpr (decay) gi = gi + wd * p[i];
                    const T mi = m[i] + b1c * (gi - m[i]);
                    m[i] = mi;
                    const T ui = nan_max(b2 * u[i], std::abs(gi) + eps);
                    u[i] = ui;
                    p[i] = p[i] - clr * (mi / ui);
                }
            },
            c.weight_decay != 0.0);
    }
};

}  // namespace fusedopt::kernels
