// Adadelta, exactly torch.optim.Adadelta's rule (eps inside both square roots):
//   g = -grad if maximize else grad;  g += weight_decay * p
//   v = rho * v + (1 - rho) * g^2
//   delta = sqrt(u + eps) / sqrt(v + eps) * g
//   u = rho * u + (1 - rho) * delta^2
//   p -= lr * delta
// hyper: lr, rho, eps, weight_decay, maximize. state: square_avg (v), acc_delta (u).
// scalar: step (counted, as torch does; the rule does not use it).
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt::kernels {

struct Adadelta {
    static constexpr int n_hyper = 5, n_state = 2, n_scalar = 1;
    struct Coef {
        double lr, rho, rhoc, eps, weight_decay, sign;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        *scalar[0] += 1.0;
        return {h[0], h[1], 1.0 - h[1], h[2], h[3], h[4] != 0.0 ? -1.0 : 1.0};
    }

    template <class T>
    static void update(const Coef& c, T* __restrict p, const T* __restrict g, T* const* s, std::size_t n) {
        T* __restrict v = s[0];
        T* __restrict u = s[1];
        const T lr = static_cast<T>(c.lr), rho = static_cast<T>(c.rho), rhoc = static_cast<T>(c.rhoc);
        const T eps = static_cast<T>(c.eps), wd = static_cast<T>(c.weight_decay), sign = static_cast<T>(c.sign);
        with_flags(
            [&](auto decay) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = sign * g[i];
                    if constexpr (decay) gi = gi + wd * p[i];
                    const T vi = rho * v[i] + rhoc * (gi * gi);
                    v[i] = vi;
                    const T delta = std::sqrt(u[i] + eps) / std::sqrt(vi + eps) * gi;
                    u[i] = rho * u[i] + rhoc * (delta * delta);
                    p[i] = p[i] - lr * delta;
                }
            },
            c.weight_decay != 0.0);
    }
};

}  // namespace fusedopt::kernels
