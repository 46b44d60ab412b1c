// SGD with momentum, dampening, Nesterov momentum, L2 weight decay and maximize,
// exactly torch.optim.SGD's rule:
//   g = -grad if maximize else grad;  g += weight_decay * p
//   buf = g (first step) | momentum * buf + (1 - dampening) * g
//   g = g + momentum * buf (nesterov) | buf
//   p -= lr * g
// Without momentum there is no state; the scalar step counts the steps taken since
// the momentum buffer was created (1 marks the first).
#pragma once

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

// The SGD direction of one element, from its (sign-scaled) grad gi: L2 weight decay, then
// the momentum buffer `b` (read and written; the grad itself on the first step) and
// Nesterov's look-ahead. SGD and SGDHD step along it.
template <bool Decay, bool Momentum, bool First, bool Nesterov, class T>
inline T sgd_direction(T gi, T p, T& b, T wd, T mom, T damp) {
    T d = gi;
    if constexpr (Decay) d = d + wd * p;
    if constexpr (Momentum) {
        if constexpr (First)
            b = d;
        else
            b = mom * b + damp * d;
        if constexpr (Nesterov)
            d = d + mom * b;
        else
            d = b;
    }
    return d;
}

struct SGD {
    static constexpr const char* name = "sgd";
    static constexpr std::array hyper{Hyper{"lr"},           Hyper{"momentum"}, Hyper{"dampening"},
                                      Hyper{"weight_decay"}, Hyper{"nesterov"}, Hyper{"maximize"}};
    static constexpr std::array state{"momentum_buffer"};
    static constexpr std::array scalars{"step"};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int lr = at(hyper, "lr"), momentum = at(hyper, "momentum"), dampening = at(hyper, "dampening"),
                             weight_decay = at(hyper, "weight_decay"), maximize = at(hyper, "maximize"),
                             nesterov = at(hyper, "nesterov"), momentum_buffer = at(state, "momentum_buffer"),
                             step = at(scalars, "step");
    };
    struct Coef {
        double lr, momentum, one_minus_dampening, weight_decay, grad_scale;
        bool nesterov, first;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        bool first = false;
        if (double* step = scalar[Index::step]) {
            *step += 1.0;
            first = *step == 1.0;
        }
        return {h[Index::lr],
                h[Index::momentum],
                1.0 - h[Index::dampening],
                h[Index::weight_decay],
                h[Index::maximize] != 0.0 ? -1.0 : 1.0,
                h[Index::nesterov] != 0.0,
                first};
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict buf = s[Index::momentum_buffer];
        const T lr = static_cast<T>(c.lr), mom = static_cast<T>(c.momentum);
        const T damp = static_cast<T>(c.one_minus_dampening), wd = static_cast<T>(c.weight_decay);
        const T grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto decay, auto momentum, auto first, auto nesterov) {
                for (std::size_t i = 0; i < n; ++i) {
                    const T pi = p[i];
                    T b = momentum && !first ? buf[i] : T(0);
                    const T d = sgd_direction<decay, momentum, first, nesterov>(grad_scale * g[i], pi, b, wd, mom, damp);
                    if constexpr (momentum) buf[i] = b;
                    p[i] = pi - lr * d;
                }
            },
            c.weight_decay != 0.0, buf != nullptr, c.first, c.nesterov);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
