// The native half of fusedopt.distributed: the sum of one chunk of the ranks' grads.
//
// A reduce-scatter receives, from every other rank, its copy of the elements this rank
// reduces (rows of `received`, in rank order, this rank's own row left out); this rank's
// own copy is in the arrays `mine`. sum_ranks adds them up in rank order,
// x_0 + x_1 + ... + x_{P-1} (left to right, in the arrays' dtype, as MPI's SUM), divides
// by `divisor` when it is not 1, and writes the result to `out` (which may be `mine`):
// one parallel sweep without the GIL instead of P NumPy passes and a temporary each.
// Summing in rank order whatever rank does the work makes every element's bits
// independent of which rank reduced it.
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

// Rank q's values: `mine` for this rank, else row q of `received` before it and row q-1
// after it (its own row is left out).
template <class T>
const T* rank_values(const T* mine, const T* received, std::size_t row_stride, std::size_t rank, std::size_t q) {
    return q == rank ? mine : received + (q < rank ? q : q - 1) * row_stride;
}

// Blocks of kBlock elements summed in a buffer on the stack: the loops over the elements
// vectorize, and `out` may be `mine` (written only after every rank's value is read).
template <class T>
void sum_loop(const T* mine, const T* received, std::size_t row_stride, std::size_t nranks, std::size_t rank, T divisor,
              bool divide, T* out, std::size_t n) {
    constexpr std::size_t kBlock = 512;
    alignas(64) T s[kBlock];
    for (std::size_t b = 0; b < n; b += kBlock) {
        const std::size_t m = n - b < kBlock ? n - b : kBlock;
        const T* x0 = rank_values(mine, received, row_stride, rank, 0) + b;
        for (std::size_t i = 0; i < m; ++i) s[i] = x0[i];
        for (std::size_t q = 1; q < nranks; ++q) {
            const T* x = rank_values(mine, received, row_stride, rank, q) + b;
            for (std::size_t i = 0; i < m; ++i) s[i] = s[i] + x[i];
        }
        if (divide)
            for (std::size_t i = 0; i < m; ++i) out[b + i] = s[i] / divisor;
        else
            for (std::size_t i = 0; i < m; ++i) out[b + i] = s[i];
    }
}

void sum_ranks(py::sequence out_seq, py::sequence mine_seq, py::handle received_obj, std::size_t rank, double divisor) {
    PyArrayObject* received = contiguous_float_array(received_obj, "received");
    if (PyArray_NDIM(received) != 2)
        throw py::value_error("received must be 2-D (one row per other rank), got " + shape_of(received));
    const std::size_t nrows = static_cast<std::size_t>(PyArray_DIM(received, 0));
    const std::size_t width = static_cast<std::size_t>(PyArray_DIM(received, 1));
    if (rank > nrows)
        throw py::value_error("rank " + std::to_string(rank) + " is out of range for " + std::to_string(nrows + 1) + " ranks");
    if (!(divisor > 0)) throw py::value_error("divisor must be > 0");
    const std::size_t n = py::len(out_seq);
    if (py::len(mine_seq) != n)
        throw py::value_error("out has " + std::to_string(n) + " arrays, mine " + std::to_string(py::len(mine_seq)));
    const int type = PyArray_TYPE(received);
    std::vector<PyArrayObject*> outs(n), mines(n);
    std::vector<std::size_t> sizes(n), starts(n);
    std::size_t total = 0;
    for (std::size_t t = 0; t < n; ++t) {
        outs[t] = contiguous_float_array(out_seq[t], item("out", t));
        mines[t] = contiguous_float_array(mine_seq[t], item("mine", t));
        for (PyArrayObject* a : {outs[t], mines[t]})
            if (PyArray_TYPE(a) != type)
                throw py::type_error(item("out", t) + " has dtype " + dtype_of(a) + ", received " + dtype_of(received));
        if (PyArray_SIZE(outs[t]) != PyArray_SIZE(mines[t]))
            throw py::value_error(item("out", t) + " and " + item("mine", t) + " differ in size");
        if (!PyArray_ISWRITEABLE(outs[t])) throw py::value_error(item("out", t) + " is read-only");
        if (overlaps(outs[t], received) || overlaps(mines[t], received))
            throw py::value_error(item("out", t) + " or " + item("mine", t) + " shares memory with received");
        if (outs[t] != mines[t] && PyArray_DATA(outs[t]) != PyArray_DATA(mines[t]) && overlaps(outs[t], mines[t]))
            throw py::value_error(item("out", t) + " partly overlaps " + item("mine", t));
        sizes[t] = static_cast<std::size_t>(PyArray_SIZE(outs[t]));
        starts[t] = total;
        total += sizes[t];
    }
    if (total != width)
        throw py::value_error("the arrays hold " + std::to_string(total) + " elements, received rows " + std::to_string(width));
    std::vector<void*> out_data(n);
    std::vector<const void*> mine_data(n);
    for (std::size_t t = 0; t < n; ++t) {
        out_data[t] = PyArray_DATA(outs[t]);
        mine_data[t] = PyArray_DATA(mines[t]);
    }
    std::vector<std::size_t> offsets;
    build_offsets(sizes, offsets);
    const bool is_double = type == NPY_FLOAT64;
    const bool divide = divisor != 1.0;
    const void* recv = PyArray_DATA(received);
    py::gil_scoped_release nogil;
    parallel_pieces(offsets, sizes, [&](std::size_t t, std::size_t start, std::size_t count) {
        const std::size_t at = starts[t] + start;
        if (is_double)
            sum_loop<double>(static_cast<const double*>(mine_data[t]) + start, static_cast<const double*>(recv) + at, width,
                             nrows + 1, rank, divisor, divide, static_cast<double*>(out_data[t]) + start, count);
        else
            sum_loop<float>(static_cast<const float*>(mine_data[t]) + start, static_cast<const float*>(recv) + at, width,
                            nrows + 1, rank, static_cast<float>(divisor), divide, static_cast<float*>(out_data[t]) + start,
                            count);
    });
}

}  // namespace

void register_distributed(py::module_& m) {
    m.def("sum_ranks", &sum_ranks, py::arg("out"), py::arg("mine"), py::arg("received"), py::arg("rank"), py::arg("divisor"),
          "out[t] = (x_0 + x_1 + ... + x_{P-1}) / divisor element-wise, summed left to right in rank order, where this "
          "rank's x is mine[t] and rank q's is the matching slice of received's row (q if q < rank, else q - 1); "
          "out[t] may be mine[t]. The arrays of out (and of mine) laid end to end span one row of received. "
          "One parallel sweep without the GIL.");
}

}  // namespace fusedopt
