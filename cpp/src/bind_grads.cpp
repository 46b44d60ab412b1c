// The native half of fusedopt's functions on lists of grads (fusedopt.clip): the p-norm
// sums of clip_grad_norm_ / get_total_norm, and the in-place scale and clamp of
// clip_grads_with_norm_ / clip_grad_value_, each one parallel sweep over the whole list
// (reduce.hpp), without the GIL. The arrays are checked here with the GIL held; the
// Python layer names the bad ones for the user and sends only the arrays this takes
// (float32 / float64 in the machine's byte order, aligned, contiguous in C or Fortran order).
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL fusedopt_ARRAY_API
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <numpy/arrayobject.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "fusedopt/parallel.hpp"
#include "fusedopt/target.hpp"

namespace py = pybind11;

namespace fusedopt {
namespace {

// The checked arrays of one call, as a work list.
struct GradList {
    std::vector<py::object> keep;  // holds the arrays alive while the GIL is released
    std::vector<TensorRef> refs;
    std::vector<std::size_t> sizes, offsets;

    // names[k]: the index messages give grads[k] (the caller's list may hold more).
    GradList(py::handle grads, bool writes, const std::vector<std::size_t>& names) {
        py::sequence seq = py::reinterpret_borrow<py::sequence>(grads);
        if (!names.empty() && names.size() != py::len(seq)) throw py::value_error("names must have one entry per grad");
        auto name = [&names](std::size_t i) { return item("grads", names.empty() ? i : names[i]); };
        std::vector<std::pair<Extent, std::size_t>> spans;
        for (std::size_t i = 0; i < py::len(seq); ++i) {
            py::object o = seq[i];
            auto* a = PyArray_Check(o.ptr()) ? reinterpret_cast<PyArrayObject*>(o.ptr()) : nullptr;
            if (!a || !supported_dtype(a) || !same_layout(a, PyArray_IS_C_CONTIGUOUS(a)))
                throw py::type_error(name(i) + " must be an aligned, contiguous float32 or float64 array");
            if (writes && !PyArray_ISWRITEABLE(a)) throw py::value_error(name(i) + " is read-only");
            if (writes) spans.emplace_back(extent_of(a), i);
            TensorRef r{};
            r.param = PyArray_DATA(a);
            r.grad = PyArray_DATA(a);
            r.size = static_cast<std::size_t>(PyArray_SIZE(a));
            r.is_double = PyArray_TYPE(a) == NPY_FLOAT64;
            refs.push_back(r);
            sizes.push_back(r.size);
            keep.push_back(o);
        }
        // An array written twice (or two views of one) would be scaled twice.
        std::sort(spans.begin(), spans.end(), [](const auto& x, const auto& y) { return x.first.lo < y.first.lo; });
        for (std::size_t k = 1; k < spans.size(); ++k)
            if (!spans[k].first.empty() && spans[k].first.lo < spans[k - 1].first.hi)
                throw py::value_error(name(std::min(spans[k - 1].second, spans[k].second)) + " and " +
                                      name(std::max(spans[k - 1].second, spans[k].second)) +
                                      " share memory: each grad must be given once");
        build_offsets(sizes, offsets);
    }
};

// sum over every element of |g|^p (max |g| for p = inf), and each tensor's, in float64.
py::tuple norm_sums(py::handle grads, double p, const std::vector<std::size_t>& names) {
    if (!(p > 0.0)) throw py::value_error("norm_type must be > 0 (or inf)");
    GradList list(grads, false, names);
    std::vector<double> per_tensor(list.refs.size());
    double total;
    {
        py::gil_scoped_release nogil;
        total = active_target().grad_norm_sums(list.refs, list.offsets, list.sizes, p, per_tensor.data());
    }
    return py::make_tuple(total, per_tensor);
}

// grads[i] *= factor (cast to the grad's dtype), for every i, in place.
void scale_grads(py::handle grads, double factor, const std::vector<std::size_t>& names) {
    GradList list(grads, true, names);
    py::gil_scoped_release nogil;
    active_target().rewrite_grads(list.refs, list.offsets, list.sizes, false, factor, 0.0);
}

// grads[i] = clamp(grads[i], lo, hi), for every i, in place (NaN stays NaN).
void clamp_grads(py::handle grads, double lo, double hi, const std::vector<std::size_t>& names) {
    if (!(lo <= hi)) throw py::value_error("clamp needs lo <= hi");
    GradList list(grads, true, names);
    py::gil_scoped_release nogil;
    active_target().rewrite_grads(list.refs, list.offsets, list.sizes, true, lo, hi);
}

}  // namespace

void register_grads(py::module_& m) {
    // names: the index each grad has in the caller's list, for messages (default: its position).
    m.def("norm_sums", &norm_sums, py::arg("grads"), py::arg("p"), py::arg("names") = std::vector<std::size_t>{},
          "(sum of |g|^p over every grad, or max |g| for p = inf; the same per grad), in float64, "
          "the same bits on any number of threads.");
    m.def("scale_grads", &scale_grads, py::arg("grads"), py::arg("factor"), py::arg("names") = std::vector<std::size_t>{},
          "grads[i] *= factor, in place, in one sweep.");
    m.def("clamp_grads", &clamp_grads, py::arg("grads"), py::arg("lo"), py::arg("hi"),
          py::arg("names") = std::vector<std::size_t>{}, "grads[i] = clamp(grads[i], lo, hi), in place, in one sweep.");
}

}  // namespace fusedopt
