// Adagrad, exactly torch.optim.Adagrad's rule (dense gradients):
//   g = -grad if maximize else grad;  g += weight_decay * p
//   clr = lr / (1 + (t - 1) * lr_decay)
//   sum = sum + g^2
//   p -= clr * g / (sqrt(sum) + eps)
// The sum exists from construction, filled with initial_accumulator_value (set by the
// Python side; the kernel does not read it).
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct Adagrad {
    static constexpr const char* name = "adagrad";
    static constexpr std::array hyper{Hyper{"lr"}, Hyper{"lr_decay"}, Hyper{"weight_decay"}, Hyper{"eps"}, Hyper{"maximize"}};
    static constexpr std::array state{"sum"};
    static constexpr std::array scalars{"step"};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int lr = at(hyper, "lr"), lr_decay = at(hyper, "lr_decay"), weight_decay = at(hyper, "weight_decay"),
                             eps = at(hyper, "eps"), maximize = at(hyper, "maximize"), sum = at(state, "sum"),
                             step = at(scalars, "step");
    };
    struct Coef {
        double clr, weight_decay, eps, grad_scale;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double lr = h[Index::lr], lr_decay = h[Index::lr_decay];
        const double step = (*scalar[Index::step] += 1.0);
        return {lr / (1.0 + (step - 1.0) * lr_decay), h[Index::weight_decay], h[Index::eps],
                h[Index::maximize] != 0.0 ? -1.0 : 1.0};
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict sum = s[Index::sum];
        const T clr = static_cast<T>(c.clr), wd = static_cast<T>(c.weight_decay);
        const T eps = static_cast<T>(c.eps), grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto decay) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = grad_scale * g[i];
                    if constexpr (decay) gi = gi + wd * p[i];
                    const T si = sum[i] + gi * gi;
                    sum[i] = si;
                    p[i] = p[i] - clr * (gi / (std::sqrt(si) + eps));
                }
            },
            c.weight_decay != 0.0);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
