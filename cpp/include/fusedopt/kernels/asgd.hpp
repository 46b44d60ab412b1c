// ASGD: averaged stochastic gradient descent (Polyak & Juditsky, 1992), exactly
// torch.optim.ASGD's single-tensor rule:
//   t += 1
//   g = -grad if maximize else grad;  g += weight_decay * p
//   p = p * (1 - lambd * eta) - eta * g          (eta, mu: this step's, before their update)
//   ax = p if mu == 1 else ax + (p - ax) * mu
//   eta = lr / (1 + lambd * lr * t)^alpha;  mu = 1 / max(1, t - t0)
// eta starts at lr (the Python side creates it), mu at 1; both are float64 scalar state.
#pragma once

#include <algorithm>
#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct ASGD {
    static constexpr const char* name = "asgd";
    static constexpr std::array hyper{Hyper{"lr"}, Hyper{"lambd"},        Hyper{"alpha"},
                                      Hyper{"t0"}, Hyper{"weight_decay"}, Hyper{"maximize"}};
    static constexpr std::array state{"ax"};
    static constexpr std::array scalars{"step", "eta", "mu"};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int lr = at(hyper, "lr"), lambd = at(hyper, "lambd"), alpha = at(hyper, "alpha"), t0 = at(hyper, "t0"),
                             weight_decay = at(hyper, "weight_decay"), maximize = at(hyper, "maximize"), ax = at(state, "ax"),
                             step = at(scalars, "step"), eta = at(scalars, "eta"), mu = at(scalars, "mu");
    };
    struct Coef {
        double decay, neg_eta, weight_decay, mu, grad_scale;
        bool copy;  // mu == 1: ax becomes a copy of p, as torch's ax.copy_(param)
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double lr = h[Index::lr], lambd = h[Index::lambd];
        const double step = (*scalar[Index::step] += 1.0);
        const double eta = *scalar[Index::eta], mu = *scalar[Index::mu];
        const Coef c{1.0 - lambd * eta, -eta, h[Index::weight_decay], mu, h[Index::maximize] != 0.0 ? -1.0 : 1.0, mu == 1.0};
        *scalar[Index::eta] = lr / std::pow(1.0 + lambd * lr * step, h[Index::alpha]);
        *scalar[Index::mu] = 1.0 / std::max(1.0, step - h[Index::t0]);
        return c;
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict ax = s[Index::ax];
        const T decay = static_cast<T>(c.decay), neg_eta = static_cast<T>(c.neg_eta);
        const T wd = static_cast<T>(c.weight_decay), mu = static_cast<T>(c.mu), grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto l2, auto copy) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = grad_scale * g[i];
                    T pi = p[i];
                    if constexpr (l2) gi = gi + wd * pi;
                    pi = pi * decay;
                    pi = pi + neg_eta * gi;
                    p[i] = pi;
                    if constexpr (copy)
                        ax[i] = pi;
                    else
                        ax[i] = ax[i] + (pi - ax[i]) * mu;
                }
            },
            c.weight_decay != 0.0, c.copy);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
