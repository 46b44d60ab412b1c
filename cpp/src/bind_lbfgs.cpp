// The native half of fusedopt.LBFGS: the axpy of its two-loop recursion and its parameter
// updates, y += a * x, in one parallel sweep without the GIL.
//
// NumPy has no axpy: `q -= np.multiply(y, a, out=tmp)` moves a vector twice more than
// torch's `q.add_(y, alpha=-a)` (a write and a read of tmp). Here the product is rounded
// to the arrays' dtype and then added, each element exactly as those two NumPy calls
// compute it (the build contracts no multiply-add), so the fused backend keeps the NumPy
// backend's bits.
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL fusedopt_ARRAY_API
#include <pybind11/pybind11.h>

#include <numpy/arrayobject.h>

#include <cstddef>
#include <string>
#include <vector>

#include "arrays.hpp"
#include "fusedopt/parallel.hpp"

namespace py = pybind11;

namespace fusedopt {
namespace {

template <class T>
void axpy_loop(T a, const T* __restrict x, T* __restrict y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        const T ax = a * x[i];
        y[i] = y[i] + ax;
    }
}

void axpy(double alpha, py::handle xo, py::handle yo) {
    PyArrayObject* x = contiguous_float_array(xo, "x");
    PyArrayObject* y = contiguous_float_array(yo, "y");
    if (PyArray_TYPE(x) != PyArray_TYPE(y)) throw py::type_error("x has dtype " + dtype_of(x) + ", y " + dtype_of(y));
    if (PyArray_SIZE(x) != PyArray_SIZE(y))
        throw py::value_error("x has " + std::to_string(PyArray_SIZE(x)) + " elements, y " + std::to_string(PyArray_SIZE(y)));
    if (!PyArray_ISWRITEABLE(y)) throw py::value_error("y is read-only");
    if (overlaps(x, y)) throw py::value_error("x and y share memory");
    const std::vector<std::size_t> sizes{static_cast<std::size_t>(PyArray_SIZE(y))};
    std::vector<std::size_t> offsets;
    build_offsets(sizes, offsets);
    const bool is_double = PyArray_TYPE(y) == NPY_FLOAT64;
    void* yd = PyArray_DATA(y);
    const void* xd = PyArray_DATA(x);
    py::gil_scoped_release nogil;
    parallel_pieces(offsets, sizes, [=](std::size_t, std::size_t start, std::size_t count) {
        if (is_double)
            axpy_loop<double>(alpha, static_cast<const double*>(xd) + start, static_cast<double*>(yd) + start, count);
        else
            axpy_loop<float>(static_cast<float>(alpha), static_cast<const float*>(xd) + start, static_cast<float*>(yd) + start,
                             count);
    });
}

}  // namespace

void register_lbfgs(py::module_& m) {
    m.def("axpy", &axpy, py::arg("alpha"), py::arg("x"), py::arg("y"),
          "y += alpha * x in place (alpha rounded to the arrays' dtype, the product rounded, then added: "
          "NumPy's y += np.multiply(x, alpha) without the temporary), in one parallel sweep without the GIL.");
}

}  // namespace fusedopt
