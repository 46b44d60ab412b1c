// Adamax, exactly torch.optim.Adamax's rule (eps inside the maximum):
//   g = -grad if maximize else grad;  g += weight_decay * p
//   m = m + (1 - beta1) * (g - m)
//   u = max(beta2 * u, |g| + eps)          (NaN-propagating, as torch.maximum)
//   p -= lr / (1 - beta1^t) * m / u
// m is the state exp_avg, u exp_inf.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct Adamax {
    static constexpr const char* name = "adamax";
    static constexpr std::array hyper{Hyper{"lr"}, Hyper{"betas", 2}, Hyper{"eps"}, Hyper{"weight_decay"}, Hyper{"maximize"}};
    static constexpr std::array state{"exp_avg", "exp_inf"};
    static constexpr std::array scalars{"step"};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int lr = at(hyper, "lr"), beta1 = at(hyper, "betas", 0), beta2 = at(hyper, "betas", 1),
                             eps = at(hyper, "eps"), weight_decay = at(hyper, "weight_decay"), maximize = at(hyper, "maximize"),
                             exp_avg = at(state, "exp_avg"), exp_inf = at(state, "exp_inf"), step = at(scalars, "step");
    };
    struct Coef {
        double clr, beta1c, beta2, eps, weight_decay, grad_scale;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double lr = h[Index::lr], beta1 = h[Index::beta1];
        const double step = (*scalar[Index::step] += 1.0);
        return {lr / (1.0 - std::pow(beta1, step)),    1.0 - beta1, h[Index::beta2], h[Index::eps], h[Index::weight_decay],
                h[Index::maximize] != 0.0 ? -1.0 : 1.0};
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict m = s[Index::exp_avg];
        T* __restrict u = s[Index::exp_inf];
        const T clr = static_cast<T>(c.clr), b1c = static_cast<T>(c.beta1c), b2 = static_cast<T>(c.beta2);
        const T eps = static_cast<T>(c.eps), wd = static_cast<T>(c.weight_decay), grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto decay) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = grad_scale * g[i];
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

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
