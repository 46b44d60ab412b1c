// The native half of fusedopt.SparseAdam: row-sparse gradients (fusedopt.RowGrad).
//
//   coalesce_rows(indices, rows, n_rows, name) -> (unique, values)
//       the sorted distinct indices and, for each, the sum of its rows in the order they
//       were given, from zero (torch's Tensor.coalesce() of a sparse embedding grad);
//   sparse_adam_rows(param, exp_avg, exp_avg_sq, unique, values, step_size, beta1, beta2,
//                    eps, scale, maximize)
//       torch.optim._functional.sparse_adam on the touched rows only, element by element
//       in the parameter's dtype, one rounding per torch operation:
//           g   = values * scale;  if maximize: g = -g
//           u1  = (g - m) * (1 - beta1);        m = m + u1
//           u2  = (g * g - v) * (1 - beta2);    v = v + u2
//           p   = p + (-step_size) * ((u1 + m_old) / (sqrt(u2 + v_old) + eps))
//       where step_size = lr * sqrt(1 - beta2^t) / (1 - beta1^t) comes from Python (double).
//
// Both split the distinct rows over fusedopt's thread pool (parallel.hpp's run_chunks):
// every row is computed by one thread from its own inputs, so the bits do not depend on
// the number of threads. Every array and index is checked with the GIL held, before it
// is released; nothing is read or written outside the arrays.
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL fusedopt_ARRAY_API
#include <pybind11/pybind11.h>

#include <numpy/arrayobject.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "arrays.hpp"
#include "fusedopt/parallel.hpp"

namespace py = pybind11;

namespace fusedopt {
namespace {

PyArrayObject* as_array(py::handle o, const std::string& what) {
    if (!PyArray_Check(o.ptr())) throw py::type_error(what + " must be a numpy.ndarray, got " + type_name(o.ptr()));
    return reinterpret_cast<PyArrayObject*>(o.ptr());
}

// A float32 / float64 array in the machine's byte order, aligned and C-contiguous.
PyArrayObject* float_rows(py::handle o, const std::string& what, bool writes) {
    PyArrayObject* a = as_array(o, what);
    if (!supported_dtype(a) || !same_layout(a, true))
        throw py::type_error(what + " must be an aligned, C-contiguous float32 or float64 array");
    if (PyArray_NDIM(a) < 1) throw py::value_error(what + " must have at least one dimension");
    if (writes && !PyArray_ISWRITEABLE(a)) throw py::value_error(what + " is read-only");
    return a;
}

// A 1-D aligned, contiguous int64 array in the machine's byte order.
PyArrayObject* index_array(py::handle o, const std::string& what) {
    PyArrayObject* a = as_array(o, what);
    if (PyArray_TYPE(a) != NPY_INT64 || !PyArray_ISNOTSWAPPED(a) || !PyArray_ISALIGNED(a) || PyArray_NDIM(a) != 1 ||
        !PyArray_IS_C_CONTIGUOUS(a))
        throw py::type_error(what + " must be a 1-D contiguous int64 array");
    return a;
}

// Elements per row: the product of the dimensions after the first.
std::size_t row_size(PyArrayObject* a) {
    std::size_t n = 1;
    for (int d = 1; d < PyArray_NDIM(a); ++d) n *= static_cast<std::size_t>(PyArray_DIM(a, d));
    return n;
}

bool same_row_shape(PyArrayObject* a, PyArrayObject* b) {
    if (PyArray_NDIM(a) != PyArray_NDIM(b)) return false;
    for (int d = 1; d < PyArray_NDIM(a); ++d)
        if (PyArray_DIM(a, d) != PyArray_DIM(b, d)) return false;
    return true;
}

// fn(lo, hi) for ranges of [0, n_rows) of about the same size, over the thread pool when
// the work is large enough (parallel.hpp's thresholds), else on the calling thread.
template <class Fn>
void parallel_rows(std::size_t n_rows, std::size_t row_elems, Fn&& fn) {
    const std::size_t total = n_rows * std::max<std::size_t>(row_elems, 1);
    const int threads = get_num_threads();
    if (n_rows == 0) return;
    if (total < kParallelMin || threads <= 1 || n_rows == 1) {
        fn(std::size_t{0}, n_rows);
        return;
    }
    const std::size_t min_rows = std::max<std::size_t>(1, kChunkMin / std::max<std::size_t>(row_elems, 1));
    const std::size_t per_chunk = std::max(min_rows, n_rows / (static_cast<std::size_t>(threads) * kChunksPerThread) + 1);
    const std::size_t n_chunks = (n_rows + per_chunk - 1) / per_chunk;
    using Body = std::remove_reference_t<Fn>;
    struct Ctx {
        Body* fn;
        std::size_t n_rows, per_chunk;
        static void run(void* self, std::size_t k) {
            const Ctx& c = *static_cast<const Ctx*>(self);
            const std::size_t lo = k * c.per_chunk, hi = std::min(c.n_rows, lo + c.per_chunk);
            (*c.fn)(lo, hi);
        }
    } ctx{&fn, n_rows, per_chunk};
    run_chunks(n_chunks, static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(threads), n_chunks)), &Ctx::run, &ctx);
}

// ------------------------------------------------------------------------- coalesce

template <class T>
void sum_rows(const T* __restrict rows, T* __restrict out, const std::int64_t* order, const std::size_t* starts,
              std::size_t n_unique, std::size_t d) {
    parallel_rows(n_unique, d * (starts[n_unique] / std::max<std::size_t>(n_unique, 1)), [&](std::size_t lo, std::size_t hi) {
        for (std::size_t u = lo; u < hi; ++u) {
            T* o = out + u * d;
            for (std::size_t e = 0; e < d; ++e) o[e] = T(0);  // as numpy.add.at into zeros: -0.0 sums to +0.0
            for (std::size_t k = starts[u]; k < starts[u + 1]; ++k) {
                const T* r = rows + static_cast<std::size_t>(order[k]) * d;
                for (std::size_t e = 0; e < d; ++e) o[e] = o[e] + r[e];
            }
        }
    });
}

py::tuple coalesce_rows(py::handle indices, py::handle rows, std::int64_t n_rows, const std::string& name) {
    PyArrayObject* idx = index_array(indices, name + ".indices");
    PyArrayObject* r = float_rows(rows, name + ".rows", false);
    const std::size_t k = static_cast<std::size_t>(PyArray_DIM(idx, 0));
    if (static_cast<std::size_t>(PyArray_DIM(r, 0)) != k)
        throw py::value_error(name + ".rows has " + std::to_string(PyArray_DIM(r, 0)) + " rows for " + std::to_string(k) +
                              " indices");
    if (n_rows < 0) throw py::value_error("n_rows must be >= 0");
    const auto* ix = static_cast<const std::int64_t*>(PyArray_DATA(idx));
    for (std::size_t j = 0; j < k; ++j)
        if (ix[j] < 0 || ix[j] >= n_rows)
            throw py::value_error(name + ".indices[" + std::to_string(j) + "] is " + std::to_string(ix[j]) + ", outside [0, " +
                                  std::to_string(n_rows) + ")");
    const std::size_t d = row_size(r);
    // positions sorted by index, the given order kept among equal indices
    std::vector<std::int64_t> order(k);
    std::vector<std::size_t> starts;
    {
        py::gil_scoped_release nogil;
        std::iota(order.begin(), order.end(), std::int64_t{0});
        std::stable_sort(order.begin(), order.end(), [ix](std::int64_t a, std::int64_t b) { return ix[a] < ix[b]; });
        starts.reserve(k + 1);
        for (std::size_t j = 0; j < k; ++j)
            if (j == 0 || ix[order[j]] != ix[order[j - 1]]) starts.push_back(j);
        starts.push_back(k);
    }
    const std::size_t n_unique = starts.size() - 1;
    std::vector<npy_intp> shape(PyArray_DIMS(r), PyArray_DIMS(r) + PyArray_NDIM(r));
    shape[0] = static_cast<npy_intp>(n_unique);
    npy_intp ushape[1] = {static_cast<npy_intp>(n_unique)};
    py::object unique = py::reinterpret_steal<py::object>(PyArray_SimpleNew(1, ushape, NPY_INT64));
    py::object values = py::reinterpret_steal<py::object>(PyArray_SimpleNew(PyArray_NDIM(r), shape.data(), PyArray_TYPE(r)));
    if (!unique || !values) throw py::error_already_set();
    auto* uo = static_cast<std::int64_t*>(PyArray_DATA(reinterpret_cast<PyArrayObject*>(unique.ptr())));
    void* vo = PyArray_DATA(reinterpret_cast<PyArrayObject*>(values.ptr()));
    const void* ri = PyArray_DATA(r);
    const bool is_double = PyArray_TYPE(r) == NPY_FLOAT64;
    {
        py::gil_scoped_release nogil;
        for (std::size_t u = 0; u < n_unique; ++u) uo[u] = ix[order[starts[u]]];
        if (is_double)
            sum_rows(static_cast<const double*>(ri), static_cast<double*>(vo), order.data(), starts.data(), n_unique, d);
        else
            sum_rows(static_cast<const float*>(ri), static_cast<float*>(vo), order.data(), starts.data(), n_unique, d);
    }
    return py::make_tuple(unique, values);
}

// ------------------------------------------------------------------------- the step

template <class T>
struct AdamRows {
    T* __restrict p;
    T* __restrict m;
    T* __restrict v;
    const T* __restrict g;
    const std::int64_t* rows;
    std::size_t d;
    T scale, one_minus_beta1, one_minus_beta2, eps, neg_step_size;
    bool maximize, scaled;

    void operator()(std::size_t lo, std::size_t hi) const {
        for (std::size_t u = lo; u < hi; ++u) {
            const std::size_t base = static_cast<std::size_t>(rows[u]) * d;
            T* __restrict pr = p + base;
            T* __restrict mr = m + base;
            T* __restrict vr = v + base;
            const T* __restrict gr = g + u * d;
            for (std::size_t e = 0; e < d; ++e) {
                T gv = scaled ? gr[e] * scale : gr[e];
                if (maximize) gv = -gv;
                const T m0 = mr[e], v0 = vr[e];
                const T u1 = (gv - m0) * one_minus_beta1;
                const T u2 = (gv * gv - v0) * one_minus_beta2;
                mr[e] = m0 + u1;
                vr[e] = v0 + u2;
                const T numer = u1 + m0;
                const T denom = std::sqrt(u2 + v0) + eps;
                pr[e] = pr[e] + neg_step_size * (numer / denom);
            }
        }
    }
};

void sparse_adam_rows(py::handle param, py::handle exp_avg, py::handle exp_avg_sq, py::handle unique, py::handle values,
                      double step_size, double beta1, double beta2, double eps, double scale, bool maximize,
                      const std::string& name) {
    PyArrayObject* p = float_rows(param, name, true);
    PyArrayObject* m = float_rows(exp_avg, "exp_avg of " + name, true);
    PyArrayObject* v = float_rows(exp_avg_sq, "exp_avg_sq of " + name, true);
    PyArrayObject* idx = index_array(unique, "the indices of the grad of " + name);
    PyArrayObject* g = float_rows(values, "the rows of the grad of " + name, false);
    for (PyArrayObject* a : {m, v, g})
        if (PyArray_TYPE(a) != PyArray_TYPE(p)) throw py::type_error("the state and grad of " + name + " must have its dtype");
    if (!same_shape(m, p) || !same_shape(v, p))
        throw py::value_error("the state of " + name + " must have its shape " + shape_of(p));
    const std::size_t k = static_cast<std::size_t>(PyArray_DIM(idx, 0));
    if (!same_row_shape(g, p) || static_cast<std::size_t>(PyArray_DIM(g, 0)) != k)
        throw py::value_error("the rows of the grad of " + name + " have shape " + shape_of(g) + "; " + name + " has shape " +
                              shape_of(p) + " and the grad " + std::to_string(k) + " indices");
    const PyArrayObject* arrays[4] = {p, m, v, g};
    for (int a = 0; a < 4; ++a)
        for (int b = a + 1; b < 4; ++b)
            if (overlaps(const_cast<PyArrayObject*>(arrays[a]), const_cast<PyArrayObject*>(arrays[b])))
                throw py::value_error(name + ", its state and its grad must not share memory");
    const auto* ix = static_cast<const std::int64_t*>(PyArray_DATA(idx));
    const std::int64_t n_rows = PyArray_DIM(p, 0);
    for (std::size_t j = 0; j < k; ++j) {
        if (ix[j] < 0 || ix[j] >= n_rows)
            throw py::value_error("the grad of " + name + " has index " + std::to_string(ix[j]) + ", outside [0, " +
                                  std::to_string(n_rows) + ")");
        if (j > 0 && ix[j] <= ix[j - 1])  // distinct rows: no two threads write one row
            throw py::value_error("the indices of the grad of " + name + " must be strictly increasing (coalesced)");
    }
    const std::size_t d = row_size(p);
    const bool is_double = PyArray_TYPE(p) == NPY_FLOAT64;
    auto run = [&](auto zero) {
        using T = decltype(zero);
        AdamRows<T> body{static_cast<T*>(PyArray_DATA(p)),
                         static_cast<T*>(PyArray_DATA(m)),
                         static_cast<T*>(PyArray_DATA(v)),
                         static_cast<const T*>(PyArray_DATA(g)),
                         ix,
                         d,
                         static_cast<T>(scale),
                         static_cast<T>(1.0 - beta1),
                         static_cast<T>(1.0 - beta2),
                         static_cast<T>(eps),
                         static_cast<T>(-step_size),
                         maximize,
                         scale != 1.0};
        py::gil_scoped_release nogil;
        parallel_rows(k, d, body);
    };
    if (is_double)
        run(0.0);
    else
        run(0.0f);
}

}  // namespace

void register_sparse(py::module_& m) {
    m.def("coalesce_rows", &coalesce_rows, py::arg("indices"), py::arg("rows"), py::arg("n_rows"), py::arg("name") = "grad",
          "(sorted distinct indices, the sum of each one's rows in the given order): a row-sparse grad coalesced, "
          "as torch's Tensor.coalesce(). ValueError for an index outside [0, n_rows).");
    m.def("sparse_adam_rows", &sparse_adam_rows, py::arg("param"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("indices"),
          py::arg("values"), py::arg("step_size"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("scale"),
          py::arg("maximize"), py::arg("name") = "param",
          "torch's SparseAdam update of the rows `indices` (coalesced: strictly increasing) of param and its state, "
          "in place, the rows split over the thread pool, without the GIL.");
}

}  // namespace fusedopt
