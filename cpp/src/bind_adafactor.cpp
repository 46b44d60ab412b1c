// The native half of fusedopt.Adafactor: one parameter's step (fusedopt/adafactor.hpp),
// its arrays checked here with the GIL held, the passes run without it. Adafactor is not
// a Plan kernel: its state does not have the parameter's shape (row_var / col_var), and
// its update needs per-row and per-column reductions of the whole parameter.
//
// The loops are compiled once per instruction-set target with the others (target.cpp) and
// reached through the active target's table: the same bits on every target.
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL fusedopt_ARRAY_API
#include <pybind11/pybind11.h>

#include <numpy/arrayobject.h>

#include <cstddef>
#include <string>
#include <vector>

#include "arrays.hpp"
#include "fusedopt/target.hpp"
#include "fusedopt/types.hpp"

namespace py = pybind11;

namespace fusedopt {
namespace {

// `o` as an aligned, C-contiguous array of `dtype` and `shape` (writeable if `writes`);
// TypeError / ValueError naming it otherwise.
PyArrayObject* checked(py::handle o, const char* name, int dtype, const std::vector<npy_intp>& shape, bool writes) {
    auto* a = PyArray_Check(o.ptr()) ? reinterpret_cast<PyArrayObject*>(o.ptr()) : nullptr;
    if (!a || !supported_dtype(a) || !PyArray_ISALIGNED(a) || !PyArray_IS_C_CONTIGUOUS(a))
        throw py::type_error(std::string(name) + " must be an aligned, C-contiguous float32 or float64 array");
    if (PyArray_TYPE(a) != dtype) throw py::type_error(std::string(name) + " has dtype " + dtype_of(a) + ", not the parameter's");
    bool same = PyArray_NDIM(a) == static_cast<int>(shape.size());
    for (int d = 0; same && d < PyArray_NDIM(a); ++d) same = PyArray_DIM(a, d) == shape[static_cast<std::size_t>(d)];
    if (!same) throw py::value_error(std::string(name) + " has shape " + shape_of(a) + ", not the one the parameter needs");
    if (writes && !PyArray_ISWRITEABLE(a)) throw py::value_error(std::string(name) + " is read-only");
    return a;
}

void adafactor_step(py::handle param, py::handle grad, py::handle row_var, py::handle col_var, py::handle variance, double lr,
                    double weight_decay, double eps1, double eps2, double d, double weight, double rho, bool maximize) {
    auto* p0 = PyArray_Check(param.ptr()) ? reinterpret_cast<PyArrayObject*>(param.ptr()) : nullptr;
    if (!p0) throw py::type_error("param must be a numpy.ndarray");
    const int dtype = PyArray_TYPE(p0);
    const int ndim = PyArray_NDIM(p0);
    std::vector<npy_intp> shape(PyArray_DIMS(p0), PyArray_DIMS(p0) + ndim);
    PyArrayObject* p = checked(param, "param", dtype, shape, true);
    PyArrayObject* g = checked(grad, "grad", dtype, shape, false);
    std::vector<PyArrayObject*> state;
    if (ndim >= 2) {
        if (!variance.is_none()) throw py::value_error("a parameter of 2 or more dims has no variance (row_var and col_var)");
        std::vector<npy_intp> rows(shape), cols(shape);
        rows[static_cast<std::size_t>(ndim - 1)] = 1;
        cols[static_cast<std::size_t>(ndim - 2)] = 1;
        state.push_back(checked(row_var, "row_var", dtype, rows, true));
        state.push_back(checked(col_var, "col_var", dtype, cols, true));
    } else {
        if (!row_var.is_none() || !col_var.is_none())
            throw py::value_error("a parameter of 0 or 1 dims has no row_var / col_var (variance)");
        state.push_back(checked(variance, "variance", dtype, shape, true));
    }
    if (overlaps(p, g)) throw py::value_error("grad shares memory with param");
    for (PyArrayObject* s : state) {
        if (overlaps(s, g)) throw py::value_error("grad shares memory with the state");
        if (overlaps(s, p)) throw py::value_error("param shares memory with the state");
    }
    if (state.size() == 2 && overlaps(state[0], state[1])) throw py::value_error("row_var and col_var share memory");
    if (!(d > 0.0) || !(eps1 >= 0.0) || !(eps2 >= 0.0)) throw py::value_error("d must be > 0, eps1 and eps2 >= 0");

    const AdafactorHyper h{lr, weight_decay, eps1, eps2, d, weight, rho, maximize};
    void* pd = PyArray_DATA(p);
    const void* gd = PyArray_DATA(g);
    void* s0 = PyArray_DATA(state[0]);
    void* s1 = state.size() > 1 ? PyArray_DATA(state[1]) : nullptr;
    // B matrices of R x C; a parameter of 0 or 1 dims is 1 x 1 x n (unfactored: s1 null)
    std::size_t B = 1, R = 1, C = static_cast<std::size_t>(PyArray_SIZE(p));
    if (ndim >= 2) {
        for (int k = 0; k < ndim - 2; ++k) B *= static_cast<std::size_t>(shape[static_cast<std::size_t>(k)]);
        R = static_cast<std::size_t>(shape[static_cast<std::size_t>(ndim - 2)]);
        C = static_cast<std::size_t>(shape[static_cast<std::size_t>(ndim - 1)]);
    }
    const AdafactorFn run = active_target().adafactor;
    const bool is_double = dtype == NPY_FLOAT64;
    py::gil_scoped_release nogil;
    run(pd, gd, s0, s1, B, R, C, is_double, h);
}

}  // namespace

void register_adafactor(py::module_& m) {
    m.def("adafactor_step", &adafactor_step, py::arg("param"), py::arg("grad"), py::arg("row_var"), py::arg("col_var"),
          py::arg("variance"), py::kw_only(), py::arg("lr"), py::arg("weight_decay"), py::arg("eps1"), py::arg("eps2"),
          py::arg("d"), py::arg("weight"), py::arg("rho"), py::arg("maximize"),
          "One Adafactor step of one parameter, in place (fusedopt.Adafactor's fused backend). "
          "weight = step ** beta2_decay, rho = min(lr, 1 / sqrt(step)): the step count is the caller's. "
          "row_var / col_var for a parameter of 2 or more dims (else None), variance for 0 or 1 dims (else None); "
          "every array aligned, C-contiguous, of the parameter's dtype.");
}

}  // namespace fusedopt
