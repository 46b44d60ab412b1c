// What the bindings check about NumPy arrays: names for messages, memory extents and
// overlaps, supported dtypes and layouts. Shared by bind_optim.cpp (the optimizers' Plan)
// and the other bindings (bind_grads.cpp, bind_lbfgs.cpp, bind_distributed.cpp, ...).
//
// Include it after numpy/arrayobject.h (with the extension's PY_ARRAY_UNIQUE_SYMBOL).
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace fusedopt {

namespace py = pybind11;

inline std::string shape_of(PyArrayObject* a) {
    std::string s = "(";
    for (int d = 0; d < PyArray_NDIM(a); ++d) {
        if (d) s += ", ";
        s += std::to_string(PyArray_DIM(a, d));
    }
    if (PyArray_NDIM(a) == 1) s += ",";
    return s + ")";
}

// The dtype's name, with its byte order where that is not the machine's (">f8 (big-endian)").
inline std::string dtype_of(PyArrayObject* a) {
    py::handle descr(reinterpret_cast<PyObject*>(PyArray_DESCR(a)));
    if (PyArray_ISNOTSWAPPED(a)) return descr.attr("name").cast<std::string>();
    return py::str(descr).cast<std::string>() +
           (PyArray_ISBYTESWAPPED(a) && PY_BIG_ENDIAN == 0 ? " (big-endian)" : " (byte-swapped)");
}

inline std::string type_name(PyObject* o) { return Py_TYPE(o)->tp_name; }

inline std::string item(const char* what, std::size_t i) { return std::string(what) + "[" + std::to_string(i) + "]"; }

inline bool same_shape(PyArrayObject* a, PyArrayObject* b) {
    if (PyArray_NDIM(a) != PyArray_NDIM(b)) return false;
    for (int d = 0; d < PyArray_NDIM(a); ++d)
        if (PyArray_DIM(a, d) != PyArray_DIM(b, d)) return false;
    return true;
}

// The bytes [lo, hi) that an array's elements may occupy, whatever its strides (numpy's
// get_array_memory_extents); empty for an array of no elements. Unsigned arithmetic:
// absurd strides wrap instead of overflowing.
struct Extent {
    std::uintptr_t lo = 0, hi = 0;
    bool empty() const { return lo >= hi; }
};

inline Extent extent_of(PyArrayObject* a) {
    if (PyArray_SIZE(a) == 0) return {};
    std::uintptr_t lo = reinterpret_cast<std::uintptr_t>(PyArray_DATA(a)), hi = lo;
    for (int d = 0; d < PyArray_NDIM(a); ++d) {
        const npy_intp s = PyArray_STRIDE(a, d);
        const auto n = static_cast<std::uintptr_t>(PyArray_DIM(a, d) - 1);
        const std::uintptr_t mag = s < 0 ? ~static_cast<std::uintptr_t>(s) + 1 : static_cast<std::uintptr_t>(s);
        if (s < 0)
            lo -= n * mag;
        else
            hi += n * mag;
    }
    return {lo, hi + static_cast<std::uintptr_t>(PyArray_ITEMSIZE(a))};
}

// Whether two arrays' memory extents intersect (numpy.may_share_memory's bounds test).
inline bool overlaps(PyArrayObject* a, PyArrayObject* b) {
    const Extent x = extent_of(a), y = extent_of(b);
    return !x.empty() && !y.empty() && x.lo < y.hi && y.lo < x.hi;
}

inline bool supported_dtype(PyArrayObject* a) {
    const int t = PyArray_TYPE(a);
    return (t == NPY_FLOAT32 || t == NPY_FLOAT64) && PyArray_ISNOTSWAPPED(a);
}

// Whether `a`'s dtype is ml_dtypes.bfloat16 (a NumPy user dtype: its scalar type is
// compared with the one of ml_dtypes, which must be imported already for such an array
// to exist; fusedopt never imports it here).
inline bool is_bfloat16(PyArrayObject* a) {
    if (PyArray_TYPE(a) < NPY_USERDEF || PyArray_ITEMSIZE(a) != 2) return false;
    PyObject* mod = PyImport_GetModule(py::str("ml_dtypes").ptr());
    if (!mod) {
        PyErr_Clear();
        return false;
    }
    py::object module = py::reinterpret_steal<py::object>(mod);
    if (!py::hasattr(module, "bfloat16")) return false;
    return module.attr("bfloat16").ptr() == reinterpret_cast<PyObject*>(PyArray_DESCR(a)->typeobj);
}

// fusedopt's DType (types.hpp) of a parameter in the machine's byte order: float32,
// float64, bfloat16 or float16; -1 for any other.
inline int param_dtype(PyArrayObject* a) {
    if (!PyArray_ISNOTSWAPPED(a)) return -1;
    switch (PyArray_TYPE(a)) {
        case NPY_FLOAT32:
            return 0;
        case NPY_FLOAT64:
            return 1;
        case NPY_FLOAT16:
            return 3;
        default:
            return is_bfloat16(a) ? 2 : -1;
    }
}

// C-contiguous arrays are walked in C order, other (Fortran-)contiguous ones in
// Fortran order; every array of one tensor must be laid out like its parameter.
inline bool same_layout(PyArrayObject* a, bool c_order) {
    return PyArray_ISALIGNED(a) && (c_order ? PyArray_IS_C_CONTIGUOUS(a) : PyArray_IS_F_CONTIGUOUS(a));
}

// `o` as an aligned, C-contiguous float32/float64 array, else TypeError naming `name`
// (the flat vectors of bind_lbfgs.cpp and bind_distributed.cpp).
inline PyArrayObject* contiguous_float_array(py::handle o, const std::string& name) {
    if (!PyArray_Check(o.ptr())) throw py::type_error(name + " must be a numpy.ndarray, got " + type_name(o.ptr()));
    auto* a = reinterpret_cast<PyArrayObject*>(o.ptr());
    if (!supported_dtype(a) || !PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a))
        throw py::type_error(name + " must be an aligned, C-contiguous float32 or float64 array, got " + dtype_of(a));
    return a;
}

}  // namespace fusedopt
