// Adadelta, exactly torch.optim.Adadelta's rule (eps inside both square roots):
//   g = -grad if maximize else grad;  g += weight_decay * p
//   v = rho * v + (1 - rho) * g^2
//   delta = sqrt(u + eps) / sqrt(v + eps) * g
//   u = rho * u + (1 - rho) * delta^2
//   p -= lr * delta
// v is the state square_avg, u acc_delta; the scalar step is counted, as torch does,
// though the rule does not use it.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct Adadelta {
    static constexpr const char* name = "adadelta";
    static constexpr std::array hyper{Hyper{"lr"}, Hyper{"rho"}, Hyper{"eps"}, Hyper{"weight_decay"}, Hyper{"maximize"}};
    static constexpr std::array state{"square_avg", "acc_delta"};
    static constexpr std::array scalars{"step"};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int rho = at(hyper, "rho"), lr = at(hyper, "lr"), eps = at(hyper, "eps"),
                             weight_decay = at(hyper, "weight_decay"), maximize = at(hyper, "maximize"),
                             square_avg = at(state, "square_avg"), acc_delta = at(state, "acc_delta"), step = at(scalars, "step");
    };
    struct Coef {
        double lr, rho, rhoc, eps, weight_decay, grad_scale;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        *scalar[Index::step] += 1.0;
        const double rho = h[Index::rho];
        return {h[Index::lr], rho, 1.0 - rho, h[Index::eps], h[Index::weight_decay], h[Index::maximize] != 0.0 ? -1.0 : 1.0};
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict v = s[Index::square_avg];
        T* __restrict u = s[Index::acc_delta];
        const T lr = static_cast<T>(c.lr), rho = static_cast<T>(c.rho), rhoc = static_cast<T>(c.rhoc);
        const T eps = static_cast<T>(c.eps), wd = static_cast<T>(c.weight_decay), grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto decay) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = grad_scale * g[i];
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

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
