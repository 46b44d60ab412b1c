// SGDHD: SGD whose learning rate learns itself by hypergradient descent (Baydin et al.
// 2018), as the authors' hypergrad/sgd_hd.py, with one learning rate per param group:
//   g = -grad if maximize else grad;   g += weight_decay * p
//   lr = lr + hypergrad_lr * <g, d_(t-1)>     (d_(t-1): the previous step's direction; 0 at t = 1)
//   momentum: b = g (t = 1) or momentum b + (1 - dampening) g;  d = g + momentum b (nesterov) or b
//   no momentum: d = g
//   p = p - lr * d
// The dot product (each product in the tensor's type, summed in float64) is over every
// tensor of the group (the hypergradient of the group's rate;
// the authors allow one group), a float64 sums pass before the update (the same bits on any
// thread count); the new rate is written back to group["lr"]. grad_prev holds the previous
// direction; with momentum and without nesterov it is the momentum buffer, not kept twice.
#pragma once

#include <cmath>

#include "fusedopt/kernel.hpp"
#include "fusedopt/kernels/sgd.hpp"
#include "fusedopt/lane_sums.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct SGDHD {
    static constexpr const char* name = "sgd_hd";
    static constexpr std::array hyper{Hyper{"lr"},       Hyper{"momentum"},     Hyper{"dampening"}, Hyper{"weight_decay"},
                                      Hyper{"nesterov"}, Hyper{"hypergrad_lr"}, Hyper{"maximize"}};
    static constexpr std::array state{"momentum_buffer", "grad_prev"};
    static constexpr std::array scalars{"step"};
    static constexpr std::array group_values{"lr"};
    struct Index {
        static constexpr int lr = at(hyper, "lr"), momentum = at(hyper, "momentum"), dampening = at(hyper, "dampening"),
                             weight_decay = at(hyper, "weight_decay"), nesterov = at(hyper, "nesterov"),
                             hypergrad_lr = at(hyper, "hypergrad_lr"), maximize = at(hyper, "maximize"),
                             momentum_buffer = at(state, "momentum_buffer"), grad_prev = at(state, "grad_prev"),
                             step = at(scalars, "step"), group_lr = at(group_values, "lr");
    };
    struct Coef {
        double momentum, dampc, weight_decay, step_size, grad_scale;
        bool first, nesterov;
    };
    static constexpr int n_sums = 1;  // <g, previous direction>

    static Coef prepare(const double* h, double* const* scalar, void* const* /*state*/) {
        const double step = (*scalar[Index::step] += 1.0);
        Coef c{};
        c.momentum = h[Index::momentum];
        c.dampc = 1.0 - h[Index::dampening];
        c.weight_decay = h[Index::weight_decay];
        c.first = step == 1.0;
        c.nesterov = h[Index::nesterov] != 0.0;
        c.grad_scale = h[Index::maximize] != 0.0 ? -1.0 : 1.0;
        return c;
    }

    // Elements [0, n) of the sums pass: dot[i] = g_i prev_i.
    template <class T, bool L2>
    static void sums_chunk(const Coef& c, const T* __restrict p, const T* __restrict g, const T* __restrict prev,
                           T* __restrict dot, std::size_t n) {
        const T gs = static_cast<T>(c.grad_scale), wd = static_cast<T>(c.weight_decay);
        for (std::size_t i = 0; i < n; ++i) {
            T gi = gs * g[i];
            if constexpr (L2) gi = gi + wd * p[i];
            dot[i] = gi * prev[i];
        }
    }

    template <class T>
    static void sums(const Coef& c, const T* p, const T* g, T* const* s, std::size_t n, double* out) {
        const T* prev = s[Index::grad_prev] ? s[Index::grad_prev] : s[Index::momentum_buffer];
        if (c.first || !prev) return;  // the previous direction is 0
        double h[1][kLanes] = {};
        const bool l2 = c.weight_decay != 0.0;
        chunked_lane_sums<1, T>(n, h, [&](std::size_t i, std::size_t len, T* dot) {
            if (l2)
                sums_chunk<T, true>(c, p + i, g + i, prev + i, dot, len);
            else
                sums_chunk<T, false>(c, p + i, g + i, prev + i, dot, len);
        });
        out[0] += lanes_total(h[0]);
    }

    static void combine(Coef* coefs, const double* totals, const TensorRef* refs, std::size_t n, const GroupValues& gv) {
        constexpr int nv = static_cast<int>(group_values.size());
        thread_local std::vector<double> h;
        thread_local std::vector<char> seen;
        h.assign(static_cast<std::size_t>(gv.n_groups), 0.0);
        seen.assign(static_cast<std::size_t>(gv.n_groups), 0);
        for (std::size_t t = 0; t < n; ++t) {
            h[static_cast<std::size_t>(refs[t].group)] += totals[t];
            seen[static_cast<std::size_t>(refs[t].group)] = 1;
        }
        for (std::size_t t = 0; t < n; ++t) {  // each group's rate once, at its first tensor
            const auto g = static_cast<std::size_t>(refs[t].group);
            if (!seen[g]) continue;
            seen[g] = 0;
            double& lr = gv.values[g * nv + Index::group_lr];
            lr = lr + refs[t].hyper[Index::hypergrad_lr] * h[g];
        }
        for (std::size_t t = 0; t < n; ++t) coefs[t].step_size = gv.values[refs[t].group * nv + Index::group_lr];
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        T* __restrict buf = s[Index::momentum_buffer];
        T* __restrict prev = s[Index::grad_prev];
        const T gs = static_cast<T>(c.grad_scale), wd = static_cast<T>(c.weight_decay), mom = static_cast<T>(c.momentum),
                dampc = static_cast<T>(c.dampc), step = static_cast<T>(-c.step_size);
        with_flags(
            [&](auto l2, auto has_buf, auto nesterov, auto keep_prev, auto first) {
                for (std::size_t i = 0; i < n; ++i) {
                    const T pi = p[i];
                    T b = has_buf && !first ? buf[i] : T(0);
                    const T d = sgd_direction<l2, has_buf, first, nesterov>(gs * g[i], pi, b, wd, mom, dampc);
                    if constexpr (has_buf) buf[i] = b;
                    if constexpr (keep_prev) prev[i] = d;
                    p[i] = pi + step * d;
                }
            },
            c.weight_decay != 0.0, buf != nullptr, c.nesterov, prev != nullptr, c.first);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
