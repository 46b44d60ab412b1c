// The native half of fusedopt.swa_utils: the running averages of AveragedParams, each
// one parallel sweep over every (average, current) pair of arrays, through the one
// parallel loop (parallel.hpp), without the GIL.
//
//   lerp_arrays(avgs, currents, weight):   avg = lerp(avg, current, weight)  (EMA, SWA lerp)
//   mean_arrays(avgs, currents, count):    avg = avg + (current - avg) / count (SWA mean)
//
// Both are element-wise in the arrays' dtype, as torch computes them on the CPU: lerp is
// torch's formula (ATen/native/Lerp.h: self + w * (end - self) for |w| < 0.5, else
// end - (end - self) * (1 - w)), the weight rounded to the dtype first; the mean is
// torch.optim.swa_utils.get_swa_avg_fn's expression, one rounding per operation. No
// element depends on another, so the bits do not depend on the number of threads.
//
// The Python layer (fusedopt.swa_utils) names the bad arrays for the user; the checks
// here are the last line: float32 / float64 in the machine's byte order, aligned,
// contiguous, each current array of its average's dtype, shape and layout, the averages
// writeable and sharing memory with nothing else of the call.
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL fusedopt_ARRAY_API
#include <pybind11/pybind11.h>

#include <numpy/arrayobject.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "fusedopt/parallel.hpp"

namespace py = pybind11;

namespace fusedopt {
namespace {

// The element loops (serial; the parallel split calls them on pieces).
template <class T>
void lerp_loop(T* __restrict avg, const T* __restrict cur, std::size_t n, T w) {
    if (std::fabs(w) < T(0.5)) {
        for (std::size_t i = 0; i < n; ++i) avg[i] = avg[i] + w * (cur[i] - avg[i]);
    } else {
        const T one_minus_w = T(1) - w;
        for (std::size_t i = 0; i < n; ++i) avg[i] = cur[i] - (cur[i] - avg[i]) * one_minus_w;
    }
}

template <class T>
void mean_loop(T* __restrict avg, const T* __restrict cur, std::size_t n, T count) {
    for (std::size_t i = 0; i < n; ++i) avg[i] = avg[i] + (cur[i] - avg[i]) / count;
}

struct Span {
    Extent extent;
    std::size_t index;
    bool written;
};

struct Pair {
    void* avg;
    const void* cur;
    bool is_double;
};

// The checked arrays of one call, as a work list.
struct PairList {
    std::vector<py::object> keep;  // holds the arrays alive while the GIL is released
    std::vector<Pair> pairs;
    std::vector<std::size_t> sizes, offsets;

    PairList(py::handle avgs, py::handle currents) {
        if (!PySequence_Check(avgs.ptr()) || !PySequence_Check(currents.ptr()))
            throw py::type_error("averages and params must be sequences of arrays");
        py::sequence a = py::reinterpret_borrow<py::sequence>(avgs);
        py::sequence c = py::reinterpret_borrow<py::sequence>(currents);
        if (py::len(a) != py::len(c))
            throw py::value_error("got " + std::to_string(py::len(c)) + " params for " + std::to_string(py::len(a)) +
                                  " averages");
        std::vector<Span> spans;  // every array's memory, with its pair and whether it is written
        for (std::size_t i = 0; i < py::len(a); ++i) {
            py::object ao = a[i], co = c[i];
            if (!PyArray_Check(ao.ptr()) || !PyArray_Check(co.ptr()))
                throw py::type_error(item("params", i) + " and its average must be numpy arrays");
            auto* pa = reinterpret_cast<PyArrayObject*>(ao.ptr());
            auto* pc = reinterpret_cast<PyArrayObject*>(co.ptr());
            const bool c_order = PyArray_IS_C_CONTIGUOUS(pa);
            if (!supported_dtype(pa) || !same_layout(pa, c_order))
                throw py::type_error("the average of " + item("params", i) +
                                     " must be an aligned, contiguous float32 or float64 array");
            if (!PyArray_ISWRITEABLE(pa)) throw py::value_error("the average of " + item("params", i) + " is read-only");
            if (PyArray_TYPE(pc) != PyArray_TYPE(pa) || !PyArray_ISNOTSWAPPED(pc))
                throw py::type_error(item("params", i) + " has dtype " + dtype_of(pc) + ", its average " + dtype_of(pa));
            if (!same_shape(pa, pc))
                throw py::value_error(item("params", i) + " has shape " + shape_of(pc) + ", its average " + shape_of(pa));
            if (!same_layout(pc, c_order))
                throw py::type_error(item("params", i) + " must be aligned and laid out (C or Fortran order) as its average");
            spans.push_back({extent_of(pa), i, true});
            spans.push_back({extent_of(pc), i, false});
            pairs.push_back({PyArray_DATA(pa), PyArray_DATA(pc), PyArray_TYPE(pa) == NPY_FLOAT64});
            sizes.push_back(static_cast<std::size_t>(PyArray_SIZE(pa)));
            keep.push_back(ao);
            keep.push_back(co);
        }
        // An average written twice, or read through another array while it is written (two
        // current arrays may share memory: both are only read). One sorted sweep: a span
        // that starts before the furthest end of an earlier written span (or, written
        // itself, before the furthest end of any earlier span) overlaps it.
        std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.extent.lo < y.extent.lo; });
        const Span* reach_written = nullptr;  // the earlier written span that reaches furthest
        const Span* reach_any = nullptr;      // the earlier span that reaches furthest
        for (const Span& s : spans) {
            if (s.extent.empty()) continue;
            const Span* other = nullptr;
            if (reach_written && s.extent.lo < reach_written->extent.hi)
                other = reach_written;
            else if (s.written && reach_any && s.extent.lo < reach_any->extent.hi)
                other = reach_any;
            if (other) {
                const Span& avg = other->written ? *other : s;
                const Span& second = other->written ? s : *other;
                const std::string what = second.index == avg.index ? std::string("that parameter")
                                         : second.written          ? "the average of " + item("params", second.index)
                                                                   : item("params", second.index);
                throw py::value_error("the average of " + item("params", avg.index) + " shares memory with " + what +
                                      ": each average must be an array of its own");
            }
            if (s.written && (!reach_written || s.extent.hi > reach_written->extent.hi)) reach_written = &s;
            if (!reach_any || s.extent.hi > reach_any->extent.hi) reach_any = &s;
        }
        build_offsets(sizes, offsets);
    }
};

// avg = f(avg, cur) for every pair, in parallel; value: the weight or the count.
template <bool Lerp>
void sweep(PairList& list, double value) {
    const std::vector<Pair>& pairs = list.pairs;
    py::gil_scoped_release nogil;
    parallel_pieces(list.offsets, list.sizes, [&pairs, value](std::size_t t, std::size_t start, std::size_t count) {
        const Pair& p = pairs[t];
        if (p.is_double) {
            auto* a = static_cast<double*>(p.avg) + start;
            const auto* c = static_cast<const double*>(p.cur) + start;
            if constexpr (Lerp)
                lerp_loop<double>(a, c, count, value);
            else
                mean_loop<double>(a, c, count, value);
        } else {
            auto* a = static_cast<float*>(p.avg) + start;
            const auto* c = static_cast<const float*>(p.cur) + start;
            if constexpr (Lerp)
                lerp_loop<float>(a, c, count, static_cast<float>(value));
            else
                mean_loop<float>(a, c, count, static_cast<float>(value));
        }
    });
}

void lerp_arrays(py::handle avgs, py::handle currents, double weight) {
    if (!std::isfinite(weight)) throw py::value_error("weight must be finite");
    PairList list(avgs, currents);
    sweep<true>(list, weight);
}

void mean_arrays(py::handle avgs, py::handle currents, double count) {
    if (!(count >= 1.0) || !std::isfinite(count)) throw py::value_error("count must be finite and >= 1");
    PairList list(avgs, currents);
    sweep<false>(list, count);
}

}  // namespace

void register_average(py::module_& m) {
    m.def("lerp_arrays", &lerp_arrays, py::arg("averages"), py::arg("params"), py::arg("weight"),
          "averages[i] = lerp(averages[i], params[i], weight) in place (torch.lerp's formula, the weight "
          "rounded to the arrays' dtype), in one parallel sweep without the GIL.");
    m.def("mean_arrays", &mean_arrays, py::arg("averages"), py::arg("params"), py::arg("count"),
          "averages[i] += (params[i] - averages[i]) / count in place (one rounding per operation, in the "
          "arrays' dtype), in one parallel sweep without the GIL.");
}

}  // namespace fusedopt
