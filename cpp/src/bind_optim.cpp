// The binding of the fused optimizers: a Plan holds one optimizer's parameter and
// state arrays (checked once, when they are set) and runs a whole step, for every
// param group and every tensor, in one call. Shapes, dtypes and layouts are checked
// with the GIL held and before anything is written; the kernel runs without the GIL.
#define PY_ARRAY_UNIQUE_SYMBOL fusedopt_ARRAY_API
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <numpy/arrayobject.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fusedopt/registry.hpp"

namespace py = pybind11;

namespace fusedopt {
namespace {

std::string shape_of(PyArrayObject* a) {
    std::string s = "(";
    for (int d = 0; d < PyArray_NDIM(a); ++d) {
        if (d) s += ", ";
        s += std::to_string(PyArray_DIM(a, d));
    }
    if (PyArray_NDIM(a) == 1) s += ",";
    return s + ")";
}

std::string dtype_of(PyArrayObject* a) {
    py::object name = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(PyArray_DESCR(a))).attr("name");
    return name.cast<std::string>();
}

std::string type_name(PyObject* o) { return Py_TYPE(o)->tp_name; }

std::string item(const char* what, std::size_t i) { return std::string(what) + "[" + std::to_string(i) + "]"; }

bool same_shape(PyArrayObject* a, PyArrayObject* b) {
    if (PyArray_NDIM(a) != PyArray_NDIM(b)) return false;
    for (int d = 0; d < PyArray_NDIM(a); ++d)
        if (PyArray_DIM(a, d) != PyArray_DIM(b, d)) return false;
    return true;
}

// Whether two arrays' memory extents intersect (numpy.may_share_memory's bounds test).
bool overlaps(PyArrayObject* a, PyArrayObject* b) {
    if (PyArray_SIZE(a) == 0 || PyArray_SIZE(b) == 0) return false;
    auto lo_a = reinterpret_cast<std::uintptr_t>(PyArray_DATA(a)), lo_b = reinterpret_cast<std::uintptr_t>(PyArray_DATA(b));
    auto hi_a = lo_a + static_cast<std::uintptr_t>(PyArray_NBYTES(a)), hi_b = lo_b + static_cast<std::uintptr_t>(PyArray_NBYTES(b));
    return lo_a < hi_b && lo_b < hi_a;
}

bool supported_dtype(PyArrayObject* a) {
    const int t = PyArray_TYPE(a);
    return (t == NPY_FLOAT32 || t == NPY_FLOAT64) && PyArray_ISNOTSWAPPED(a);
}

// C-contiguous arrays are walked in C order, other (Fortran-)contiguous ones in
// Fortran order; every array of one tensor must be laid out like its parameter.
bool same_layout(PyArrayObject* a, bool c_order) {
    return PyArray_ISALIGNED(a) && (c_order ? PyArray_IS_C_CONTIGUOUS(a) : PyArray_IS_F_CONTIGUOUS(a));
}

class Plan {
public:
    Plan(const std::string& kernel, py::sequence params, std::vector<int> group_of, int n_groups)
        : kernel_(find_kernel(kernel)), n_groups_(n_groups) {
        if (!kernel_) throw py::value_error("unknown fused kernel '" + kernel + "'");
        if (n_groups < 1) throw py::value_error("n_groups must be at least 1");
        const std::size_t n = py::len(params);
        if (group_of.size() != n) throw py::value_error("group_of must have one entry per parameter");
        params_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            py::object p = params[i];
            if (!PyArray_Check(p.ptr())) throw py::type_error(item("params", i) + " must be a numpy.ndarray, got " + type_name(p.ptr()));
            auto* a = reinterpret_cast<PyArrayObject*>(p.ptr());
            if (!supported_dtype(a))
                throw py::type_error(item("params", i) + " has dtype " + dtype_of(a) + "; fusedopt updates float32 and float64 arrays");
            if (!PyArray_ISWRITEABLE(a)) throw py::value_error(item("params", i) + " is read-only");
            const bool c_order = PyArray_IS_C_CONTIGUOUS(a);
            if (!same_layout(a, c_order))
                throw py::value_error(item("params", i) + " is not contiguous in memory (a strided view?); "
                                      "fusedopt updates contiguous arrays only");
            if (group_of[i] < 0 || group_of[i] >= n_groups) throw py::value_error("group index out of range");
            params_.push_back(p);
            c_order_.push_back(c_order);
            TensorRef r;
            r.param = PyArray_DATA(a);
            r.size = static_cast<std::size_t>(PyArray_SIZE(a));
            r.is_double = PyArray_TYPE(a) == NPY_FLOAT64;
            refs_.push_back(r);
            sizes_.push_back(r.size);
        }
        group_of_ = std::move(group_of);
        build_offsets(sizes_, offsets_);
        hyper_.assign(static_cast<std::size_t>(n_groups_ * kernel_->n_hyper), 0.0);
        for (std::size_t i = 0; i < n; ++i)
            refs_[i].hyper = hyper_.data() + static_cast<std::size_t>(group_of_[i] * kernel_->n_hyper);
    }

    // state[i][k]: None or the k-th state array of params[i]; scalars[i][k]: None or a
    // float64 array of one element holding the k-th scalar state of params[i].
    void set_state(py::sequence state, py::sequence scalars) {
        const std::size_t n = params_.size();
        if (py::len(state) != n || py::len(scalars) != n) throw py::value_error("state and scalars need one entry per parameter");
        std::vector<py::object> keep;
        std::vector<TensorRef> refs = refs_;
        for (std::size_t i = 0; i < n; ++i) {
            auto* p = reinterpret_cast<PyArrayObject*>(params_[i].ptr());
            py::sequence st = state[i], sc = scalars[i];
            if (static_cast<int>(py::len(st)) != kernel_->n_state || static_cast<int>(py::len(sc)) != kernel_->n_scalar)
                throw py::value_error(std::string("kernel '") + kernel_->name + "' takes " + std::to_string(kernel_->n_state) +
                                      " state arrays and " + std::to_string(kernel_->n_scalar) + " scalars per parameter");
            for (int k = 0; k < kMaxState; ++k) refs[i].state[k] = nullptr;
            for (int k = 0; k < kMaxScalar; ++k) refs[i].scalar[k] = nullptr;
            for (int k = 0; k < kernel_->n_state; ++k) {
                py::object s = st[static_cast<std::size_t>(k)];
                if (s.is_none()) continue;
                const std::string what = "state of " + item("params", i);
                if (!PyArray_Check(s.ptr())) throw py::type_error(what + " must be a numpy.ndarray");
                auto* a = reinterpret_cast<PyArrayObject*>(s.ptr());
                if (PyArray_TYPE(a) != PyArray_TYPE(p) || !PyArray_ISNOTSWAPPED(a))
                    throw py::type_error(what + " has dtype " + dtype_of(a) + ", the parameter " + dtype_of(p));
                if (!same_shape(a, p)) throw py::value_error(what + " has shape " + shape_of(a) + ", the parameter " + shape_of(p));
                if (!PyArray_ISWRITEABLE(a) || !same_layout(a, c_order_[i]))
                    throw py::value_error(what + " must be writeable and laid out like the parameter");
                if (overlaps(a, p)) throw py::value_error(what + " shares memory with the parameter");
                refs[i].state[k] = PyArray_DATA(a);
                keep.push_back(s);
            }
            for (int k = 0; k < kernel_->n_scalar; ++k) {
                py::object s = sc[static_cast<std::size_t>(k)];
                if (s.is_none()) continue;
                auto* a = PyArray_Check(s.ptr()) ? reinterpret_cast<PyArrayObject*>(s.ptr()) : nullptr;
                if (!a || PyArray_TYPE(a) != NPY_FLOAT64 || PyArray_SIZE(a) != 1 || !PyArray_ISWRITEABLE(a) ||
                    !PyArray_ISALIGNED(a) || !PyArray_ISNOTSWAPPED(a))
                    throw py::type_error("scalar state of " + item("params", i) + " must be a writeable float64 array of one element");
                refs[i].scalar[k] = static_cast<double*>(PyArray_DATA(a));
                keep.push_back(s);
            }
        }
        refs_ = std::move(refs);
        state_refs_ = std::move(keep);
        ready_ = true;
    }

    // One step of the optimizer: grads checked, hyperparameters read, then one kernel call.
    void step(py::handle grads, py::handle hypers) {
        if (!ready_) throw py::value_error("the optimizer state has not been set");
        std::vector<py::object> copies;  // grads that had to be brought to the parameter's layout
        py::object seq = prepare_grads(grads, copies);
        read_hypers(hypers);
        py::gil_scoped_release nogil;
        kernel_->step(refs_, offsets_, sizes_);
    }

    // The grads as the kernel would read them (checked; copied where the layout
    // differs from the parameter's). The NumPy backend steps with these.
    py::list checked_grads(py::handle grads) {
        std::vector<py::object> copies;
        py::list used;
        prepare_grads(grads, copies, &used);
        return used;
    }

    std::size_t size() const { return params_.size(); }
    std::size_t numel() const {
        std::size_t n = 0;
        for (std::size_t s : sizes_) n += s;
        return n;
    }
    std::string kernel() const { return kernel_->name; }

private:
    // Checks every grad against its parameter and points the work list at it. `used`,
    // when given, receives the array each parameter will be stepped with.
    py::object prepare_grads(py::handle grads, std::vector<py::object>& copies, py::list* used = nullptr) {
        if (PyArray_Check(grads.ptr()))
            throw py::type_error("grads must be a sequence of arrays (one per parameter), got a single numpy.ndarray; wrap it in a list");
        // A tuple holds the grads alive while the kernel runs, whatever other threads do to a list.
        PyObject* fast = PySequence_Check(grads.ptr()) ? PySequence_Tuple(grads.ptr()) : nullptr;
        if (!fast) {
            PyErr_Clear();
            throw py::type_error("grads must be a sequence of arrays (one per parameter), got " + type_name(grads.ptr()));
        }
        py::object seq = py::reinterpret_steal<py::object>(fast);
        const std::size_t n = static_cast<std::size_t>(PySequence_Fast_GET_SIZE(fast));
        if (n != params_.size())
            throw py::value_error("expected " + std::to_string(params_.size()) + " grads (one per parameter), got " + std::to_string(n));
        for (std::size_t i = 0; i < n; ++i) {
            PyObject* g = PySequence_Fast_GET_ITEM(fast, static_cast<Py_ssize_t>(i));
            auto* p = reinterpret_cast<PyArrayObject*>(params_[i].ptr());
            if (!PyArray_Check(g)) throw py::type_error(item("grads", i) + " must be a numpy.ndarray, got " + type_name(g));
            auto* a = reinterpret_cast<PyArrayObject*>(g);
            if (PyArray_TYPE(a) != PyArray_TYPE(p))
                throw py::type_error(item("grads", i) + " has dtype " + dtype_of(a) + " but " + item("params", i) + " is " +
                                     dtype_of(p) + " (grads are not cast)");
            if (!same_shape(a, p))
                throw py::value_error(item("grads", i) + " has shape " + shape_of(a) + " but " + item("params", i) + " has shape " +
                                      shape_of(p));
            if (!PyArray_ISWRITEABLE(p)) throw py::value_error(item("params", i) + " has become read-only");
            if (!PyArray_ISNOTSWAPPED(a) || !same_layout(a, c_order_[i])) {
                const int flags = (c_order_[i] ? NPY_ARRAY_C_CONTIGUOUS : NPY_ARRAY_F_CONTIGUOUS) | NPY_ARRAY_ALIGNED;
                PyObject* c = PyArray_FromAny(g, PyArray_DescrFromType(PyArray_TYPE(p)), 0, 0, flags, nullptr);
                if (!c) throw py::error_already_set();
                copies.push_back(py::reinterpret_steal<py::object>(c));
                a = reinterpret_cast<PyArrayObject*>(c);
            }
            if (overlaps(a, p)) throw py::value_error(item("grads", i) + " shares memory with " + item("params", i));
            refs_[i].grad = PyArray_DATA(a);
            if (used) used->append(py::handle(reinterpret_cast<PyObject*>(a)));
        }
        return seq;
    }

    void read_hypers(py::handle hypers) {
        const std::size_t nh = static_cast<std::size_t>(kernel_->n_hyper);
        if (PySequence_Size(hypers.ptr()) != n_groups_) {
            PyErr_Clear();
            throw py::value_error("expected hyperparameters for " + std::to_string(n_groups_) + " param groups");
        }
        for (std::size_t gi = 0; gi < static_cast<std::size_t>(n_groups_); ++gi) {
            py::object group = py::reinterpret_steal<py::object>(PySequence_GetItem(hypers.ptr(), static_cast<Py_ssize_t>(gi)));
            if (!group) throw py::error_already_set();
            PyObject* fast = PySequence_Fast(group.ptr(), "hyperparameters must be a tuple");
            if (!fast) throw py::error_already_set();
            py::object hold = py::reinterpret_steal<py::object>(fast);
            if (static_cast<std::size_t>(PySequence_Fast_GET_SIZE(fast)) != nh)
                throw py::value_error(std::string("kernel '") + kernel_->name + "' takes " + std::to_string(nh) + " hyperparameters");
            for (std::size_t k = 0; k < nh; ++k) {
                const double v = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, static_cast<Py_ssize_t>(k)));
                if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
                hyper_[gi * nh + k] = v;
            }
        }
    }

    const KernelInfo* kernel_;
    int n_groups_;
    std::vector<py::object> params_;
    std::vector<bool> c_order_;
    std::vector<int> group_of_;
    std::vector<TensorRef> refs_;
    std::vector<std::size_t> sizes_, offsets_;
    std::vector<double> hyper_;
    std::vector<py::object> state_refs_;
    bool ready_ = false;
};

}  // namespace

void register_optim(py::module_& m) {
    if (_import_array() < 0) throw py::error_already_set();
    py::class_<Plan>(m, "Plan", "The parameters and state of one optimizer, stepped by a fused kernel in one call.")
        .def(py::init<const std::string&, py::sequence, std::vector<int>, int>(), py::arg("kernel"), py::arg("params"),
             py::arg("group_of"), py::arg("n_groups"))
        .def("set_state", &Plan::set_state, py::arg("state"), py::arg("scalars"))
        .def("step", &Plan::step, py::arg("grads"), py::arg("hypers"))
        .def("checked_grads", &Plan::checked_grads, py::arg("grads"))
        .def("__len__", &Plan::size)
        .def_property_readonly("numel", &Plan::numel)
        .def_property_readonly("kernel", &Plan::kernel);
    std::vector<std::string> names;
    for (const KernelInfo& k : all_kernels()) names.emplace_back(k.name);
    m.attr("kernels") = py::tuple(py::cast(names));
}

}  // namespace fusedopt
