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

    template <class T>
    static void update(const Coef& c, T* __restrict p, const T* __restrict g, T* const* s, std::size_t n) {
        T* __restrict buf = s[Index::momentum_buffer];
        const T lr = static_cast<T>(c.lr), mom = static_cast<T>(c.momentum);
        const T damp = static_cast<T>(c.one_minus_dampening), wd = static_cast<T>(c.weight_decay);
        const T grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto decay, auto momentum, auto first, auto nesterov) {
                for (std::size_t i = 0; i < n; ++i) {
                    T d = grad_scale * g[i];
                    if constexpr (decay) d = d + wd * p[i];
                    if constexpr (momentum) {
                        T b;
                        if constexpr (first)
                            b = d;
                        else
                            b = mom * buf[i] + damp * d;
                        buf[i] = b;
                        if constexpr (nesterov)
                            d = d + mom * b;
                        else
                            d = b;
                    }
                    p[i] = p[i] - lr * d;
                }
            },
            c.weight_decay != 0.0, buf != nullptr, c.first, c.nesterov);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
