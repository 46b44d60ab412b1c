// LARS (You et al. 2017), exactly optax.lars: weight decay, a per-tensor trust ratio, the
// learning rate, then momentum on the result (optax's trace):
//   u = g + weight_decay * p
//   ratio = trust_coefficient * ||p|| / (||u|| + eps), or 1 when either norm is 0
//   u = -lr * (ratio * u)
//   momentum: t = u + momentum * t;  u = u + momentum * t (nesterov) or t
//   p = p + u
// A reduction pass (run_step, kernel.hpp) sums ||p||^2 and ||u||^2 per tensor (float64,
// the same bits on any number of threads) before the update pass. The trace exists with
// momentum only (with momentum 0 it would equal u).
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct LARS {
    static constexpr const char* name = "lars";
    static constexpr std::array hyper{Hyper{"lr"},  Hyper{"weight_decay"}, Hyper{"trust_coefficient"},
                                      Hyper{"eps"}, Hyper{"momentum"},     Hyper{"nesterov"}};
    static constexpr std::array state{"trace"};
    static constexpr std::array<const char*, 0> scalars{};
    struct Index {
        static constexpr int lr = at(hyper, "lr"), weight_decay = at(hyper, "weight_decay"),
                             trust_coefficient = at(hyper, "trust_coefficient"), eps = at(hyper, "eps"),
                             momentum = at(hyper, "momentum"), nesterov = at(hyper, "nesterov"), trace = at(state, "trace");
    };
    struct Coef {
        double lr, weight_decay, trust_coefficient, eps, momentum, ratio, grad_scale;
        bool nesterov;
    };
    static constexpr int n_sums = 2;  // ||p||^2, ||g + weight_decay * p||^2

    static Coef prepare(const double* h, double* const* /*scalar*/, void* const* /*state*/) {
        return {h[Index::lr], h[Index::weight_decay],   h[Index::trust_coefficient], h[Index::eps], h[Index::momentum], 1.0,
                1.0,          h[Index::nesterov] != 0.0};
    }

    template <class T>
    static void sums(const Coef& c, const T* __restrict p, const T* __restrict g, T* const* /*s*/, std::size_t n, double* out) {
        const T wd = static_cast<T>(c.weight_decay), gs = static_cast<T>(c.grad_scale);
        double pp[kLanes] = {}, uu[kLanes] = {};
        for_lanes(n, [&](std::size_t i, int k) {
            const double pd = static_cast<double>(p[i]), ud = static_cast<double>(gs * g[i] + wd * p[i]);
            pp[k] += pd * pd;
            uu[k] += ud * ud;
        });
        out[0] += lanes_total(pp);
        out[1] += lanes_total(uu);
    }

    static void finish(Coef& c, const double* sums) { c.ratio = trust_ratio(sums[0], sums[1], c.trust_coefficient, c.eps); }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict t = s[Index::trace];
        const T wd = static_cast<T>(c.weight_decay), ratio = static_cast<T>(c.ratio), neg_lr = static_cast<T>(-c.lr);
        const T mom = static_cast<T>(c.momentum), gs = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto momentum, auto nesterov) {
                for (std::size_t i = 0; i < n; ++i) {
                    T u = (gs * g[i] + wd * p[i]) * ratio * neg_lr;
                    if constexpr (momentum) {
                        const T ti = u + mom * t[i];
                        t[i] = ti;
                        if constexpr (nesterov)
                            u = u + mom * ti;
                        else
                            u = ti;
                    }
                    p[i] = p[i] + u;
                }
            },
            t != nullptr, c.nesterov);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
