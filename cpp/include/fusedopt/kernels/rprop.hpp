// Rprop: resilient backpropagation (Riedmiller & Braun, 1993), exactly torch.optim.Rprop's
// single-tensor rule, element by element:
//   g = -grad if maximize else grad
//   f = etaplus if g * prev > 0, etaminus if g * prev < 0, else 1   (NaN: 1, as torch.sign(NaN) = 0)
//   step_size = clamp(step_size * f, step_size_min, step_size_max)   (NaN stays NaN)
//   g = 0 where f == etaminus                     (the sign flipped: no move, forget g)
//   p -= sign(g) * step_size;  prev = g           (sign(0) = sign(NaN) = 0, as torch.sign)
// step_size starts full of lr (the Python side creates it; the kernel does not read lr).
// Every choice is a select, so that the loop vectorizes as blends.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct Rprop {
    static constexpr const char* name = "rprop";
    static constexpr std::array hyper{Hyper{"etas", 2}, Hyper{"step_sizes", 2}, Hyper{"maximize"}};
    static constexpr std::array state{"prev", "step_size"};
    static constexpr std::array scalars{"step"};
    // Where each input sits, found by name at compile time: a name the tables above
    // do not declare does not compile.
    struct Index {
        static constexpr int etaminus = at(hyper, "etas", 0), etaplus = at(hyper, "etas", 1),
                             step_size_min = at(hyper, "step_sizes", 0), step_size_max = at(hyper, "step_sizes", 1),
                             maximize = at(hyper, "maximize"), prev = at(state, "prev"), step_size = at(state, "step_size"),
                             step = at(scalars, "step");
    };
    struct Coef {
        double etaminus, etaplus, step_size_min, step_size_max, grad_scale;
    };

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        *scalar[Index::step] += 1.0;
        return {h[Index::etaminus], h[Index::etaplus], h[Index::step_size_min], h[Index::step_size_max],
                h[Index::maximize] != 0.0 ? -1.0 : 1.0};
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict prev = s[Index::prev];
        T* __restrict step_size = s[Index::step_size];
        const T etaminus = static_cast<T>(c.etaminus), etaplus = static_cast<T>(c.etaplus);
        const T lo = static_cast<T>(c.step_size_min), hi = static_cast<T>(c.step_size_max);
        const T grad_scale = static_cast<T>(c.grad_scale);
        // Every comparison is made unconditionally and every choice is a select, so that
        // the loop vectorizes as blends (a nested ?: would evaluate a comparison only on
        // one branch, which the compiler does not speculate).
        for (std::size_t i = 0; i < n; ++i) {
            T gi = grad_scale * g[i];
            const T prod = gi * prev[i];
            const bool grow = prod > T(0), shrink = prod < T(0);
            T f = grow ? etaplus : T(1);
            f = shrink ? etaminus : f;
            T si = step_size[i] * f;
            si = si < lo ? lo : si;  // torch's clamp: min(max(x, lo), hi), a NaN stays NaN
            si = hi < si ? hi : si;
            gi = f == etaminus ? T(0) : gi;
            const T sign = static_cast<T>(gi > T(0)) - static_cast<T>(gi < T(0));  // 0 for NaN, as torch.sign
            p[i] = p[i] - sign * si;
            prev[i] = gi;
            step_size[i] = si;
        }
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
