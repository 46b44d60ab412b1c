// RMSprop, exactly torch.optim.RMSprop's rule (no bias correction):
//   g = -grad if maximize else grad;  g += weight_decay * p
//   v = alpha * v + (1 - alpha) * g^2
//   centered: m = m + (1 - alpha) * (g - m);  avg = sqrt(v - m^2) + eps
//   else:     avg = sqrt(v) + eps
//   momentum > 0: buf = momentum * buf + g / avg;  p -= lr * buf
//   else:         p -= lr * g / avg
// momentum_buffer exists with momentum > 0 only, grad_avg when centered only; the
// scalar step is counted, as torch does, though the rule does not use it.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct RMSprop {
    static constexpr const char* name = "rmsprop";
    static constexpr std::array hyper{Hyper{"lr"},       Hyper{"alpha"},    Hyper{"eps"},     Hyper{"weight_decay"},
                                      Hyper{"momentum"}, Hyper{"centered"}, Hyper{"maximize"}};
    static constexpr std::array state{"square_avg", "momentum_buffer", "grad_avg"};
    static constexpr std::array scalars{"step"};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int alpha = at(hyper, "alpha"), lr = at(hyper, "lr"), eps = at(hyper, "eps"),
                             weight_decay = at(hyper, "weight_decay"), momentum = at(hyper, "momentum"),
                             maximize = at(hyper, "maximize"), square_avg = at(state, "square_avg"),
                             momentum_buffer = at(state, "momentum_buffer"), grad_avg = at(state, "grad_avg"),
                             step = at(scalars, "step");
    };
    struct Coef {
        double lr, alpha, alphac, eps, weight_decay, momentum, grad_scale;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        *scalar[Index::step] += 1.0;
        const double alpha = h[Index::alpha];
        return {h[Index::lr],
                alpha,
                1.0 - alpha,
                h[Index::eps],
                h[Index::weight_decay],
                h[Index::momentum],
                h[Index::maximize] != 0.0 ? -1.0 : 1.0};
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict v = s[Index::square_avg];
        T* __restrict buf = s[Index::momentum_buffer];
        T* __restrict m = s[Index::grad_avg];
        const T lr = static_cast<T>(c.lr), alpha = static_cast<T>(c.alpha), alphac = static_cast<T>(c.alphac);
        const T eps = static_cast<T>(c.eps), wd = static_cast<T>(c.weight_decay);
        const T mom = static_cast<T>(c.momentum), grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto decay, auto momentum, auto centered) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = grad_scale * g[i];
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

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
