// Adagrad, exactly torch.optim.Adagrad's rule (dense gradients):
//   g = -grad if maximize else grad;  g += weight_decay * p
//   clr = lr / (1 + (t - 1) * lr_decay)
//   sum = sum + g^2
//   p -= clr * g / (sqrt(sum) + eps)
// The sum exists from construction, filled with initial_accumulator_value (set by the
// Python side). hyper: lr, lr_decay, weight_decay, eps, maximize. state: sum.
// scalar: step.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt::kernels {

struct Adagrad {
    static constexpr int n_hyper = 5, n_state = 1, n_scalar = 1;
    struct Coef {
        double clr, weight_decay, eps, sign;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double lr = h[0], lr_decay = h[1];
        const double step = (*scalar[0] += 1.0);
        return {lr / (1.0 + (step - 1.0) * lr_decay), h[2], h[3], h[4] != 0.0 ? -1.0 : 1.0};
    }

    template <class T>
    static void update(const Coef& c, T* __restrict p, const T* __restrict g, T* const* s, std::size_t n) {
        T* __restrict sum = s[0];
        const T clr = static_cast<T>(c.clr), wd = static_cast<T>(c.weight_decay);
        const T eps = static_cast<T>(c.eps), sign = static_cast<T>(c.sign);
        with_flags(
            [&](auto decay) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = sign * g[i];
                    if constexpr (decay) gi = gi + wd * p[i];
                    const T si = sum[i] + gi * gi;
                    sum[i] = si;
                    p[i] = p[i] - clr * (gi / (std::sqrt(si) + eps));
                }
            },
            c.weight_decay != 0.0);
    }
};

}  // namespace fusedopt::kernels
