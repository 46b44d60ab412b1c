// The one validator of fusedopt's hyperparameters (see hyper_rules.hpp).
#include "hyper_rules.hpp"

#include <pybind11/stl.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace fusedopt {

namespace {

std::string type_name(PyObject* o) { return Py_TYPE(o)->tp_name; }

// repr(o), shortened for a message (a number of 400 digits is not read).
std::string repr(PyObject* o) {
    std::string r = py::repr(py::handle(o)).cast<std::string>();
    return r.size() <= 40 ? r : r.substr(0, 30) + "..." + r.substr(r.size() - 5);
}

PyTypeObject* numpy_type(const char* name) {
    py::object t = py::module_::import("numpy").attr(name);
    return reinterpret_cast<PyTypeObject*>(t.release().ptr());  // kept for the life of the process
}

// Python's bool and numpy.bool_: flags, never numbers.
bool is_bool(PyObject* o) {
    static PyTypeObject* numpy_bool = numpy_type("bool_");
    return PyBool_Check(o) || PyObject_TypeCheck(o, numpy_bool);
}

// An array (even of one element) is not a number: numpy scalars are.
bool is_array(PyObject* o) {
    static PyTypeObject* ndarray = numpy_type("ndarray");
    return PyObject_TypeCheck(o, ndarray);
}

// g[key] for a dict (fast path) or any mapping; nullptr (no error set) when missing.
py::object group_item(PyObject* group, PyObject* key) {
    PyObject* v = nullptr;
    if (PyDict_Check(group)) {
        v = PyDict_GetItemWithError(group, key);
        Py_XINCREF(v);
    } else {
        v = PyObject_GetItem(group, key);
        if (!v && PyErr_ExceptionMatches(PyExc_KeyError)) PyErr_Clear();
    }
    if (!v && PyErr_Occurred()) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(v);
}

}  // namespace

HyperRules::HyperRules(const std::string& kernel, py::sequence rules) : kernel_(kernel.empty() ? nullptr : find_kernel(kernel)) {
    if (!kernel_ && !kernel.empty()) throw py::value_error("unknown fused kernel '" + kernel + "'");
    const int n_kernel_keys = kernel_ ? kernel_->n_hyper_keys : 0;
    const std::string who = "hyperparameter table of kernel '" + kernel + "': ";
    const std::size_t n = py::len(rules);
    int next_kernel_key = 0, kernel_offset = 0;
    for (std::size_t i = 0; i < n; ++i) {
        auto t = rules[i].cast<py::tuple>();
        if (t.size() != 8 && t.size() != 9) throw py::value_error(who + "each rule is an 8- or 9-tuple");
        Rule r;
        r.name = t[0].cast<std::string>();
        const auto kind = t[1].cast<std::string>();
        if (kind != "real" && kind != "flag") throw py::value_error(who + r.name + ": unknown kind '" + kind + "'");
        r.flag = kind == "flag";
        r.width = t[2].cast<int>();
        r.low = t[3].cast<double>();
        r.high = t[4].cast<double>();
        r.high_open = t[5].cast<bool>();
        r.must = t[6].cast<std::string>();
        if (r.width < 1 || (r.flag && r.width != 1)) throw py::value_error(who + r.name + ": bad width");
        // The range of each number: the 9th item (low, high, low_open, high_open, must) per
        // number, or the rule's own range for all of them.
        auto bounds = (t.size() == 9 ? py::object(t[8]) : py::object(py::tuple())).cast<py::sequence>();
        if (!r.flag && py::len(bounds) != 0 && py::len(bounds) != static_cast<std::size_t>(r.width))
            throw py::value_error(who + r.name + ": one range per number expected");
        for (int j = 0; !r.flag && j < r.width; ++j) {
            if (py::len(bounds) == 0) {
                r.bounds.push_back({r.low, r.high, false, r.high_open, r.must});
                continue;
            }
            auto b = bounds[static_cast<std::size_t>(j)].cast<py::tuple>();
            if (b.size() != 5) throw py::value_error(who + r.name + ": a range is (low, high, low_open, high_open, must)");
            r.bounds.push_back(
                {b[0].cast<double>(), b[1].cast<double>(), b[2].cast<bool>(), b[3].cast<bool>(), b[4].cast<std::string>()});
        }
        for (const Rule& other : rules_)
            if (other.name == r.name) throw py::value_error(who + r.name + " appears twice");
        PyObject* key = PyUnicode_InternFromString(r.name.c_str());
        if (!key) throw py::error_already_set();
        r.key = py::reinterpret_steal<py::object>(key);
        r.value_offset = n_values_;
        n_values_ += r.width;
        // The kernel's keys must come in the kernel's order, with its widths; keys the
        // kernel does not declare are read by the Python side only (initial state).
        r.kernel_offset = -1;
        for (int k = next_kernel_key; k < n_kernel_keys; ++k) {
            if (r.name != kernel_->hyper[k].name) continue;
            if (k != next_kernel_key)
                throw py::value_error(who + "'" + kernel_->hyper[next_kernel_key].name + "' must come before '" + r.name +
                                      "' (the kernel's order)");
            if (kernel_->hyper[k].width != r.width)
                throw py::value_error(who + "'" + r.name + "' holds " + std::to_string(r.width) + " value(s), the kernel reads " +
                                      std::to_string(kernel_->hyper[k].width));
            r.kernel_offset = kernel_offset;
            kernel_offset += r.width;
            ++next_kernel_key;
        }
        rules_.push_back(std::move(r));
    }
    if (next_kernel_key != n_kernel_keys)
        throw py::value_error(who + "the kernel reads '" + kernel_->hyper[next_kernel_key].name +
                              "', which the table lacks or gives out of order");
    // Requirements refer to other rules of the table: resolved once the table is known.
    for (std::size_t i = 0; i < n; ++i) {
        py::sequence reqs = rules[i].cast<py::tuple>()[7];
        for (py::handle item : reqs) {
            auto q = item.cast<py::tuple>();
            const auto other = q[0].cast<std::string>();
            const auto op = q[1].cast<std::string>();
            Requirement req{0, Op::eq, q[2].cast<double>(), ""};
            bool found = false;
            for (std::size_t j = 0; j < rules_.size(); ++j)
                if (rules_[j].name == other && !rules_[j].flag && rules_[j].width == 1) {
                    req.rule = j;
                    found = true;
                }
            if (!found || !rules_[i].flag)
                throw py::value_error(who + rules_[i].name + " requires an unknown or non-scalar '" + other + "'");
            if (op == ">")
                req.op = Op::gt;
            else if (op == ">=")
                req.op = Op::ge;
            else if (op == "<")
                req.op = Op::lt;
            else if (op == "<=")
                req.op = Op::le;
            else if (op == "==")
                req.op = Op::eq;
            else if (op == "!=")
                req.op = Op::ne;
            else
                throw py::value_error(who + "unknown operator '" + op + "'");
            req.text = other + " " + op + " " + py::repr(q[2]).cast<std::string>();
            rules_[i].
                requires
                .push_back(std::move(req));
        }
    }
}

std::vector<std::string> HyperRules::names() const {
    std::vector<std::string> out;
    for (const Rule& r : rules_) out.push_back(r.name);
    return out;
}

// Reads every key of the table from `group` into values[n_values_], checking each.
// `where(message)` prefixes a message with the group it is about (called only on error).
template <class Where>
void HyperRules::read_group(PyObject* group, double* values, const Where& where) const {
    for (const Rule& r : rules_) {
        py::object v = group_item(group, r.key.ptr());
        if (!v) throw py::value_error(where(r.name + " is missing from the param group"));
        double* out = values + r.value_offset;
        if (r.flag) {
            if (!is_bool(v.ptr())) throw py::type_error(where(r.name + " must be a bool, got " + type_name(v.ptr())));
            const int truth = PyObject_IsTrue(v.ptr());
            if (truth < 0) throw py::error_already_set();
            *out = truth ? 1.0 : 0.0;
            continue;
        }
        // The values to check: the object itself, or the items of a pair.
        py::object hold;
        PyObject* const* items = &v.ptr();
        Py_ssize_t count = 1;
        if (r.width > 1) {
            // An ordered sequence (tuple, list, array): not a str, nor a set or dict, whose order is not the user's.
            const bool ordered = PySequence_Check(v.ptr()) && !PyUnicode_Check(v.ptr()) && !PyBytes_Check(v.ptr());
            PyObject* fast = ordered ? PySequence_Fast(v.ptr(), "") : nullptr;
            if (!fast && PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_TypeError)) throw py::error_already_set();
            PyErr_Clear();
            hold = py::reinterpret_steal<py::object>(fast);
            if (!fast || PySequence_Fast_GET_SIZE(fast) != r.width)
                throw py::type_error(
                    where(r.name + " must be a sequence of " + std::to_string(r.width) + " numbers, got " + repr(v.ptr())));
            items = PySequence_Fast_ITEMS(fast);
            count = r.width;
        }
        for (Py_ssize_t j = 0; j < count; ++j) {
            PyObject* o = items[j];
            auto name = [&] { return r.width > 1 ? r.name + "[" + std::to_string(j) + "]" : r.name; };
            if (is_bool(o) || is_array(o)) throw py::type_error(where(name() + " must be a real number, got " + type_name(o)));
            const double x = PyFloat_AsDouble(o);
            if (x == -1.0 && PyErr_Occurred()) {
                if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                    PyErr_Clear();
                    throw py::value_error(where("invalid " + name() + ": " + repr(o) + " is too large; it must be " +
                                                r.bounds[static_cast<std::size_t>(j)].must));
                }
                if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_ValueError))
                    throw py::error_already_set();  // an error of the value's own (a failing __float__)
                PyErr_Clear();
                throw py::type_error(where(name() + " must be a real number, got " + type_name(o)));
            }
            const Bound& b = r.bounds[static_cast<std::size_t>(j)];
            const bool above = b.high_open ? x >= b.high : x > b.high;
            const bool below = b.low_open ? x <= b.low : x < b.low;
            if (!std::isfinite(x) || below || above)
                throw py::value_error(where("invalid " + name() + ": " + repr(o) + "; it must be " + b.must));
            out[j] = x;
        }
    }
    for (const Rule& r : rules_) {
        if (r.requires.empty() || values[r.value_offset] == 0.0) continue;
        for (const Requirement& q : r.requires) {
            const double x = values[rules_[q.rule].value_offset];
            bool ok = false;
            switch (q.op) {
                case Op::gt:
                    ok = x > q.value;
                    break;
                case Op::ge:
                    ok = x >= q.value;
                    break;
                case Op::lt:
                    ok = x < q.value;
                    break;
                case Op::le:
                    ok = x <= q.value;
                    break;
                case Op::eq:
                    ok = x == q.value;
                    break;
                case Op::ne:
                    ok = x != q.value;
                    break;
            }
            if (!ok) {
                std::string all;
                for (const Requirement& each : r.requires) all += (all.empty() ? "" : " and ") + each.text;
                throw py::value_error(where(r.name + "=True requires " + all + " (" + rules_[q.rule].name + " is " +
                                            py::repr(py::float_(x)).cast<std::string>() + ")"));
            }
        }
    }
}

void HyperRules::read_groups(py::handle groups, std::size_t n_groups, double* out) const {
    const Py_ssize_t size = PySequence_Size(groups.ptr());
    if (size < 0) {
        PyErr_Clear();
        throw py::type_error("param_groups must be a sequence of dicts");
    }
    if (static_cast<std::size_t>(size) != n_groups)
        throw py::value_error("expected " + std::to_string(n_groups) + " param groups, found " + std::to_string(size));
    const std::size_t nk = kernel_ ? static_cast<std::size_t>(kernel_->n_hyper) : 0;
    constexpr int kMaxValues = 32;
    if (n_values_ > kMaxValues) throw std::logic_error("hyperparameter table too wide");
    double values[kMaxValues];
    for (std::size_t gi = 0; gi < n_groups; ++gi) {
        py::object group = py::reinterpret_steal<py::object>(PySequence_GetItem(groups.ptr(), static_cast<Py_ssize_t>(gi)));
        if (!group) throw py::error_already_set();
        // Messages are built only on error: this runs on every step.
        read_group(group.ptr(), values,
                   [gi](const std::string& message) { return "param_groups[" + std::to_string(gi) + "]: " + message; });
        double* dst = out + gi * nk;
        for (const Rule& r : rules_)
            if (r.kernel_offset >= 0)
                for (int j = 0; j < r.width; ++j) dst[r.kernel_offset + j] = values[r.value_offset + j];
    }
}

void HyperRules::check(py::handle group, const std::string& where) const {
    std::vector<double> values(static_cast<std::size_t>(n_values_));
    read_group(group.ptr(), values.data(), [&where](const std::string& message) { return where + message; });
}

void register_hyper_rules(py::module_& m) {
    py::class_<HyperRules, std::shared_ptr<HyperRules>>(
        m, "HyperRules",
        "The rules of one optimizer class's hyperparameters, checked against its kernel's declaration when built.")
        .def(py::init<const std::string&, py::sequence>(), py::arg("kernel"), py::arg("rules"))
        .def("check", &HyperRules::check, py::arg("group"), py::arg("where") = "",
             "Raises TypeError/ValueError (prefixed by `where`) for a bad hyperparameter of `group`.")
        .def_property_readonly("names", &HyperRules::names)
        .def_property_readonly("kernel", [](const HyperRules& r) { return std::string(r.has_kernel() ? r.kernel().name : ""); });
}

}  // namespace fusedopt
