// LAMB (You et al. 2020), exactly optax.lamb: Adam's direction plus decoupled weight decay,
// scaled per tensor by the trust ratio ||p|| / ||u||:
//   m = (1 - beta1) g + beta1 m;   v = (1 - beta2) g^2 + beta2 v
//   u = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t) + eps_root) + eps) + weight_decay * p
//   ratio = ||p|| / ||u||, or 1 when either norm is 0 (optax's scale_by_trust_ratio)
//   p = p - lr * ratio * u
// A reduction pass (run_step, kernel.hpp) writes the new moments and sums ||p||^2 and
// ||u||^2 per tensor (float64, the same bits on any number of threads); the update pass
// recomputes u from them.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct LAMB {
    static constexpr const char* name = "lamb";
    static constexpr std::array hyper{Hyper{"lr"}, Hyper{"betas", 2}, Hyper{"eps"}, Hyper{"eps_root"}, Hyper{"weight_decay"}};
    static constexpr std::array state{"exp_avg", "exp_avg_sq"};
    static constexpr std::array scalars{"step"};
    struct Index {
        static constexpr int lr = at(hyper, "lr"), beta1 = at(hyper, "betas", 0), beta2 = at(hyper, "betas", 1),
                             eps = at(hyper, "eps"), eps_root = at(hyper, "eps_root"), weight_decay = at(hyper, "weight_decay"),
                             exp_avg = at(state, "exp_avg"), exp_avg_sq = at(state, "exp_avg_sq"), step = at(scalars, "step");
    };
    struct Coef {
        double beta1, beta1c, beta2, beta2c, bc1, bc2, eps, eps_root, weight_decay, lr, step_size, grad_scale;
    };
    static constexpr int n_sums = 2;  // ||p||^2, ||u||^2

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double beta1 = h[Index::beta1], beta2 = h[Index::beta2];
        const double step = (*scalar[Index::step] += 1.0);
        return {beta1,
                1.0 - beta1,
                beta2,
                1.0 - beta2,
                1.0 - std::pow(beta1, step),
                1.0 - std::pow(beta2, step),
                h[Index::eps],
                h[Index::eps_root],
                h[Index::weight_decay],
                h[Index::lr],
                0.0,
                1.0};
    }

    // The update direction of one element from its new moments (both passes compute it alike).
    template <class T>
    static T direction(const Coef& c, T m, T v, T p) {
        const T mhat = m / static_cast<T>(c.bc1), vhat = v / static_cast<T>(c.bc2);
        const T u = mhat / (std::sqrt(vhat + static_cast<T>(c.eps_root)) + static_cast<T>(c.eps));
        return u + static_cast<T>(c.weight_decay) * p;
    }

    template <class T>
    static void sums(const Coef& c, const T* __restrict p, const T* __restrict g, T* const* s, std::size_t n, double* out) {
        T* __restrict m = s[Index::exp_avg];
        T* __restrict v = s[Index::exp_avg_sq];
        const T b1 = static_cast<T>(c.beta1), b1c = static_cast<T>(c.beta1c);
        const T b2 = static_cast<T>(c.beta2), b2c = static_cast<T>(c.beta2c), gs = static_cast<T>(c.grad_scale);
        double pp[kLanes] = {}, uu[kLanes] = {};
        for_lanes(n, [&](std::size_t i, int k) {
            const T gi = gs * g[i];
            const T mi = b1c * gi + b1 * m[i];
            const T vi = b2c * (gi * gi) + b2 * v[i];
            m[i] = mi;
            v[i] = vi;
            const double pd = static_cast<double>(p[i]), ud = static_cast<double>(direction(c, mi, vi, p[i]));
            pp[k] += pd * pd;
            uu[k] += ud * ud;
        });
        out[0] += lanes_total(pp);
        out[1] += lanes_total(uu);
    }

    static void finish(Coef& c, const double* sums) { c.step_size = c.lr * trust_ratio(sums[0], sums[1], 1.0, 0.0); }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G /*g*/, T* const* s, std::size_t n) {
        const T* __restrict m = s[Index::exp_avg];
        const T* __restrict v = s[Index::exp_avg_sq];
        const T step = static_cast<T>(c.step_size);
        for (std::size_t i = 0; i < n; ++i) {
            const T pi = p[i];
            p[i] = pi - step * direction(c, m[i], v[i], pi);
        }
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
