// NAdam: Adam with Nesterov momentum (Dozat, 2016), exactly torch.optim.NAdam's rule:
//   g = -grad if maximize else grad
//   NAdam:  g += weight_decay * p          decoupled:  p *= 1 - lr * weight_decay
//   mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay)),  mu_(t+1) likewise
//   mu_product *= mu_t   (the running product mu_1 ... mu_t, a double scalar state)
//   m = m + (1 - beta1) (g - m);   v = beta2 v + (1 - beta2) g^2
//   denom = sqrt(v / (1 - beta2^t)) + eps
//   p -= (lr (1 - mu_t) / (1 - mu_product) * g + lr mu_(t+1) / (1 - mu_product mu_(t+1)) * m) / denom
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct NAdam {
    static constexpr const char* name = "nadam";
    static constexpr std::array hyper{Hyper{"lr"},           Hyper{"betas", 2},       Hyper{"eps"},
                                      Hyper{"weight_decay"}, Hyper{"momentum_decay"}, Hyper{"decoupled_weight_decay"},
                                      Hyper{"maximize"}};
    static constexpr std::array state{"exp_avg", "exp_avg_sq"};
    static constexpr std::array scalars{"step", "mu_product"};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int lr = at(hyper, "lr"), beta1 = at(hyper, "betas", 0), beta2 = at(hyper, "betas", 1),
                             weight_decay = at(hyper, "weight_decay"), momentum_decay = at(hyper, "momentum_decay"),
                             decoupled_weight_decay = at(hyper, "decoupled_weight_decay"), eps = at(hyper, "eps"),
                             maximize = at(hyper, "maximize"), exp_avg = at(state, "exp_avg"),
                             exp_avg_sq = at(state, "exp_avg_sq"), step = at(scalars, "step"),
                             mu_product = at(scalars, "mu_product");
    };
    struct Coef {
        double beta1c, beta2, beta2c, eps, weight_decay, decay, inv_bc2, coef_g, coef_m, grad_scale;
        bool decoupled;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double lr = h[Index::lr], beta1 = h[Index::beta1], beta2 = h[Index::beta2];
        const double wd = h[Index::weight_decay], momentum_decay = h[Index::momentum_decay];
        const double step = (*scalar[Index::step] += 1.0);
        const double mu = beta1 * (1.0 - 0.5 * std::pow(0.96, step * momentum_decay));
        const double mu_next = beta1 * (1.0 - 0.5 * std::pow(0.96, (step + 1.0) * momentum_decay));
        const double mu_product = (*scalar[Index::mu_product] *= mu);
        const double mu_product_next = mu_product * mu_next;
        const double bc2 = 1.0 - std::pow(beta2, step);
        const bool decoupled = h[Index::decoupled_weight_decay] != 0.0;
        return {1.0 - beta1,
                beta2,
                1.0 - beta2,
                h[Index::eps],
                decoupled ? 0.0 : wd,
                1.0 - lr * wd,
                1.0 / bc2,
                lr * (1.0 - mu) / (1.0 - mu_product),
                lr * mu_next / (1.0 - mu_product_next),
                h[Index::maximize] != 0.0 ? -1.0 : 1.0,
                decoupled && wd != 0.0};
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict m = s[Index::exp_avg];
        T* __restrict v = s[Index::exp_avg_sq];
        const T b1c = static_cast<T>(c.beta1c), b2 = static_cast<T>(c.beta2), b2c = static_cast<T>(c.beta2c);
        const T eps = static_cast<T>(c.eps), wd = static_cast<T>(c.weight_decay), decay = static_cast<T>(c.decay);
        const T inv_bc2 = static_cast<T>(c.inv_bc2), coef_g = static_cast<T>(c.coef_g);
        const T coef_m = static_cast<T>(c.coef_m), grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto l2, auto decoupled) {
                for (std::size_t i = 0; i < n; ++i) {
                    T gi = grad_scale * g[i];
                    T pi = p[i];
                    if constexpr (l2) gi = gi + wd * pi;
                    if constexpr (decoupled) pi = pi * decay;
                    const T mi = m[i] + b1c * (gi - m[i]);
                    const T vi = b2 * v[i] + b2c * (gi * gi);
                    m[i] = mi;
                    v[i] = vi;
                    const T denom = std::sqrt(vi * inv_bc2) + eps;
                    p[i] = pi - (coef_g * gi + coef_m * mi) / denom;  // one division
                }
            },
            c.weight_decay != 0.0, c.decoupled);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
