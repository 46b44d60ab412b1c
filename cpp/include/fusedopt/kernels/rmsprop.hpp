// RMSprop, exactly torch.optim.RMSprop's rule (no bias correction):
//   g = -grad if maximize else grad;  g += weight_decay * p
//   v = alpha * v + (1 - alpha) * g^2
//   centered: m = m + (1 - alpha) * (g - m);  avg = sqrt(v - m^2) + eps
//   else:     avg = sqrt(v) + eps
//   momentum > 0: buf = momentum * buf + g / avg;  p -= lr * buf
//   else:         p -= lr * g / avg
// hyper: lr, alpha, eps, weight_decay, momentum, centered, maximize.
// state: square_avg, momentum_buffer (momentum > 0 only), grad_avg (centered only).
// scalar: step (counted, as torch does; the rule does not use it).
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt::kernels {

struct RMSprop {
    static constexpr int n_hyper = 7, n_state = 3, n_scalar = 1;
    struct Coef {
        double lr, alpha, alphac, eps, weight_decay, momentum, sign;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        *scalar[0] += 1.0;
        return {h[0], h[1], 1.0 - h[1], h[2], h[3], h[4], h[6] != 0.0 ? -1.0 : 1.0};
    }

    template <class T>
    static void update(const Coef& c, T* __restrict p, const T* __restrict g, T* const* s, std::size_t n) {
        T* __restrict v = s[0];
        T* __restrict buf = s[1];
        T* __restrict m = s[2];
        const T lr = static_cast<T>(c.lr), alpha = static_cast<T>(c.alpha), alphac = static_cast<T>(c.alphac);
        const T eps = static_cast<T>(c.eps), wd = static_cast<T>(c.weight_decay);
        const T mom = static_cast<T>(c.momentum), sign = static_cast<T>(c.sign);
        with_flags(
            [&](auto decay, auto momentum, auto centered) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = sign * g[i];
                    if constexpr (decay) gi = gi + wd * p[i];
                    const T vi = alpha * v[i] + alphac * (gi * gi);
                    v[i] = vi;
                    T avg;
                    if constexpr (centered) {
                        const T mi = m[i] + alphac * (gi - m[i]);
                        m[i] = mi;
                        avg = std::sqrt(vi - mi * mi) + eps;
                    } else {
                        avg = std::sqrt(vi) + eps;
                    }
                    if constexpr (momentum) {
                        const T b = mom * buf[i] + gi / avg;
                        buf[i] = b;
                        p[i] = p[i] - lr * b;
                    } else {
                        p[i] = p[i] - lr * (gi / avg);
                    }
                }
            },
            c.weight_decay != 0.0, buf != nullptr, m != nullptr);
    }
};

}  // namespace fusedopt::kernels
