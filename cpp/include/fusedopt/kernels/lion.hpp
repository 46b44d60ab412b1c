// Lion: evolved sign momentum (Chen et al., 2023, "Symbolic Discovery of Optimization
// Algorithms", Algorithm 2), with the paper's decoupled weight decay:
//   g = -grad if maximize else grad
//   c = beta1 m + (1 - beta1) g
//   p -= lr (sign(c) + weight_decay p)        (the decay uses p before this step)
//   m = beta2 m + (1 - beta2) g
// sign(0) = 0 and sign(NaN) = NaN, as numpy.sign and torch.sign: a NaN gradient
// makes its own entries NaN instead of being silently skipped.
// No scalar state.
#pragma once

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct Lion {
    static constexpr const char* name = "lion";
    static constexpr std::array hyper{Hyper{"lr"}, Hyper{"betas", 2}, Hyper{"weight_decay"}, Hyper{"maximize"}};
    static constexpr std::array state{"exp_avg"};
    static constexpr std::array<const char*, 0> scalars{};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int beta1 = at(hyper, "betas", 0), beta2 = at(hyper, "betas", 1), lr = at(hyper, "lr"),
                             weight_decay = at(hyper, "weight_decay"), maximize = at(hyper, "maximize"),
                             exp_avg = at(state, "exp_avg");
    };
    struct Coef {
        double lr, beta1, beta1c, beta2, beta2c, weight_decay, grad_scale;
    };

    static Coef prepare(const double* h, double* const* /*scalar*/, void* const* /*state*/) {
        const double beta1 = h[Index::beta1], beta2 = h[Index::beta2];
        return {
            h[Index::lr], beta1, 1.0 - beta1, beta2, 1.0 - beta2, h[Index::weight_decay], h[Index::maximize] != 0.0 ? -1.0 : 1.0};
    }

    // numpy.sign: -1, 0 or 1, and NaN for NaN (written so that it vectorizes as blends).
    template <class T>
    static T sign_of(T x) {
        const T s = x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
        return x != x ? x : s;
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict m = s[Index::exp_avg];
        const T lr = static_cast<T>(c.lr), b1 = static_cast<T>(c.beta1), b1c = static_cast<T>(c.beta1c);
        const T b2 = static_cast<T>(c.beta2), b2c = static_cast<T>(c.beta2c);
        const T wd = static_cast<T>(c.weight_decay), grad_scale = static_cast<T>(c.grad_scale);
        with_flags(
            [&](auto decay) {
                for (std::size_t i = 0; i < n; ++i) {
                    const T gi = grad_scale * g[i];
                    const T mi = m[i];
                    T u = sign_of(b1 * mi + b1c * gi);
                    if constexpr (decay) u = u + wd * p[i];
                    p[i] = p[i] - lr * u;
                    m[i] = b2 * mi + b2c * gi;
                }
            },
            c.weight_decay != 0.0);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
