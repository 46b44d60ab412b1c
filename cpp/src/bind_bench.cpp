// The bandwidth kernels of the benchmarks (fusedopt.bench): a STREAM triad and a
// "traffic" kernel with any read/write pattern of an optimizer step (traffic_mixed: over
// arrays of several element widths), over one tensor or a work list of several, run
// through the same parallel_pieces() loop as the optimizers, compiled for the same
// instruction-set target (bench.hpp, target.cpp).
// Arguments are checked with the GIL held; the sweeps run without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fusedopt/bench.hpp"
#include "fusedopt/parallel.hpp"
#include "fusedopt/target.hpp"
#include "fusedopt/types.hpp"

namespace py = pybind11;

namespace fusedopt {
namespace {

// The checked arrays of one call: n_inplace + n_readonly roles, each a list of
// n_tensors arrays; data[t * n_roles + k] is role k of tensor t (in-place roles first).
struct Work : BenchWork {
    std::vector<py::object> keep;  // holds the arrays alive while the GIL is released
};

// A role is one array (one tensor) or a sequence of arrays (a work list).
std::vector<py::array> role_arrays(py::handle role, const std::string& what) {
    std::vector<py::array> out;
    if (py::isinstance<py::array>(role)) {
        out.push_back(py::reinterpret_borrow<py::array>(role));
        return out;
    }
    if (!py::isinstance<py::sequence>(role) || py::isinstance<py::str>(role))
        throw py::type_error(what + " must be a numpy.ndarray or a sequence of them, got " +
                             std::string(Py_TYPE(role.ptr())->tp_name));
    for (py::handle h : py::reinterpret_borrow<py::sequence>(role)) {
        if (!py::isinstance<py::array>(h))
            throw py::type_error(what + " must hold numpy.ndarray objects, got " + std::string(Py_TYPE(h.ptr())->tp_name));
        out.push_back(py::reinterpret_borrow<py::array>(h));
    }
    return out;
}

// The bytes [lo, hi) of one array of a sweep, and whether the sweep writes it.
struct Span {
    std::uintptr_t lo, hi;
    bool written;
};

// No written array may share memory with any other: one sorted sweep.
void check_no_overlap(std::vector<Span>& spans) {
    std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.lo < y.lo; });
    std::uintptr_t max_hi_all = 0, max_hi_written = 0;
    for (const Span& s : spans) {
        if (s.lo < max_hi_written || (s.written && s.lo < max_hi_all))
            throw py::value_error("an array written by the kernel shares memory with another argument");
        max_hi_all = std::max(max_hi_all, s.hi);
        if (s.written) max_hi_written = std::max(max_hi_written, s.hi);
    }
}

// roles: the in-place roles first, then the read-only ones; names: how errors call them.
Work check_work(const std::vector<py::handle>& role_args, int n_inplace, const std::vector<std::string>& names) {
    Work w{};
    w.n_inplace = n_inplace;
    w.n_readonly = static_cast<int>(role_args.size()) - n_inplace;
    const int n_roles = w.n_inplace + w.n_readonly;
    std::vector<std::vector<py::array>> roles;
    for (int k = 0; k < n_roles; ++k)
        roles.push_back(role_arrays(role_args[static_cast<std::size_t>(k)], names[static_cast<std::size_t>(k)]));
    const std::size_t n_tensors = roles[0].size();
    if (n_tensors == 0) throw py::value_error(names[0] + " is an empty list of arrays");
    const py::dtype f32 = py::dtype::of<float>(), f64 = py::dtype::of<double>();
    std::vector<Span> spans;
    for (int k = 0; k < n_roles; ++k) {
        const std::string& what = names[static_cast<std::size_t>(k)];
        if (roles[static_cast<std::size_t>(k)].size() != n_tensors)
            throw py::value_error(what + " has " + std::to_string(roles[static_cast<std::size_t>(k)].size()) + " arrays, " +
                                  names[0] + " " + std::to_string(n_tensors));
    }
    for (std::size_t t = 0; t < n_tensors; ++t) {
        const py::array& first = roles[0][t];
        if (t == 0) {
            if (first.dtype().equal(f64))
                w.is_double = true;
            else if (!first.dtype().equal(f32))
                throw py::type_error(names[0] + " has dtype " + std::string(py::str(first.dtype())) +
                                     "; the bandwidth kernels take float32 and float64");
        }
        const std::size_t n = static_cast<std::size_t>(first.size());
        for (int k = 0; k < n_roles; ++k) {
            const bool in = k < w.n_inplace;
            py::array& a = roles[static_cast<std::size_t>(k)][t];
            const std::string what = names[static_cast<std::size_t>(k)] + (n_tensors > 1 ? "[" + std::to_string(t) + "]" : "");
            if (!a.dtype().equal(w.is_double ? f64 : f32))
                throw py::type_error(what + " has dtype " + std::string(py::str(a.dtype())) + ", " + names[0] + " " +
                                     (w.is_double ? "float64" : "float32"));
            if (static_cast<std::size_t>(a.size()) != n)
                throw py::value_error(what + " has " + std::to_string(a.size()) + " elements, its tensor " + std::to_string(n));
            if (!(a.flags() & py::array::c_style) || reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() != 0)
                throw py::value_error(what + " must be C-contiguous and aligned");
            if (in && !a.writeable()) throw py::value_error(what + " is read-only");
            void* p = in ? a.mutable_data() : const_cast<void*>(a.data());
            w.data.push_back(p);
            if (n) {
                const auto lo = reinterpret_cast<std::uintptr_t>(p);
                spans.push_back({lo, lo + static_cast<std::uintptr_t>(a.nbytes()), in});
            }
            w.keep.push_back(a);
        }
        w.sizes.push_back(n);
    }
    check_no_overlap(spans);
    build_offsets(w.sizes, w.offsets);
    return w;
}

// The checked arrays of one traffic_mixed call.
struct Mixed : MixedWork {
    std::vector<py::object> keep;  // holds the arrays alive while the GIL is released
};

// Whether traffic_mixed takes arrays of dtype d: numbers (booleans, integers, floats,
// complex) and ml_dtypes' types (unstructured "V") of 1, 2, 4 or 8 bytes.
bool mixed_dtype(const py::dtype& d) {
    const char kind = d.kind();
    const py::ssize_t size = d.itemsize();
    const bool numeric =
        kind == 'b' || kind == 'i' || kind == 'u' || kind == 'f' || kind == 'c' || (kind == 'V' && !d.has_fields());
    return numeric && (size == 1 || size == 2 || size == 4 || size == 8);
}

// As check_work, for arrays of any width: tensor t's size n is that of role 0 (inplace[0]);
// every other array of the tensor holds n elements, or ceil(n / kQuantBlock) (one per
// block: a block scale).
Mixed check_mixed(const std::vector<py::handle>& role_args, int n_inplace, const std::vector<std::string>& names) {
    Mixed w{};
    w.n_inplace = n_inplace;
    w.n_readonly = static_cast<int>(role_args.size()) - n_inplace;
    const std::size_t n_roles = role_args.size();
    std::vector<std::vector<py::array>> roles;
    for (std::size_t k = 0; k < n_roles; ++k) roles.push_back(role_arrays(role_args[k], names[k]));
    const std::size_t n_tensors = roles[0].size();
    if (n_tensors == 0) throw py::value_error(names[0] + " is an empty list of arrays");
    for (std::size_t k = 0; k < n_roles; ++k)
        if (roles[k].size() != n_tensors)
            throw py::value_error(names[k] + " has " + std::to_string(roles[k].size()) + " arrays, " + names[0] + " " +
                                  std::to_string(n_tensors));
    std::vector<Span> spans;
    for (std::size_t t = 0; t < n_tensors; ++t) {
        const std::size_t n = static_cast<std::size_t>(roles[0][t].size());
        const std::size_t blocks = (n + kQuantBlock - 1) / kQuantBlock;
        for (std::size_t k = 0; k < n_roles; ++k) {
            const bool in = k < static_cast<std::size_t>(n_inplace);
            py::array& a = roles[k][t];
            const std::string what = names[k] + (n_tensors > 1 ? "[" + std::to_string(t) + "]" : "");
            if (!mixed_dtype(a.dtype()))
                throw py::type_error(what + " has dtype " + std::string(py::str(a.dtype())) +
                                     "; traffic_mixed takes numbers of 1, 2, 4 or 8 bytes");
            const std::size_t size = static_cast<std::size_t>(a.size());
            if (size != n && size != blocks)
                throw py::value_error(what + " has " + std::to_string(size) + " elements, its tensor " + std::to_string(n) +
                                      " (or " + std::to_string(blocks) + ", one per block of " + std::to_string(kQuantBlock) +
                                      ")");
            if (!(a.flags() & py::array::c_style) || reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() != 0)
                throw py::value_error(what + " must be C-contiguous and aligned");
            if (in && !a.writeable()) throw py::value_error(what + " is read-only");
            void* p = in ? a.mutable_data() : const_cast<void*>(a.data());
            w.data.push_back(p);
            w.width.push_back(static_cast<unsigned char>(a.itemsize()));
            w.per_block.push_back(size != n ? 1 : 0);
            if (size) {
                const auto lo = reinterpret_cast<std::uintptr_t>(p);
                spans.push_back({lo, lo + static_cast<std::uintptr_t>(a.nbytes()), in});
            }
            w.keep.push_back(a);
        }
        w.sizes.push_back(n);
    }
    check_no_overlap(spans);
    build_offsets(w.sizes, w.offsets);
    return w;
}

// The roles of a traffic call and how errors name them: inplace[k], then readonly[k].
void gather_roles(py::sequence inplace, py::sequence readonly, std::vector<py::handle>& roles, std::vector<std::string>& names) {
    const std::size_t ni = py::len(inplace), nr = py::len(readonly);
    if (ni < 1 || ni > kMaxInplace)
        throw py::value_error("inplace must hold 1 to " + std::to_string(kMaxInplace) + " arrays, got " + std::to_string(ni));
    if (nr > kMaxReadonly)
        throw py::value_error("readonly must hold at most " + std::to_string(kMaxReadonly) + " arrays, got " +
                              std::to_string(nr));
    for (std::size_t k = 0; k < ni; ++k) {
        roles.push_back(inplace[k]);
        names.push_back("inplace[" + std::to_string(k) + "]");
    }
    for (std::size_t k = 0; k < nr; ++k) {
        roles.push_back(readonly[k]);
        names.push_back("readonly[" + std::to_string(k) + "]");
    }
}

void check_repeat(long repeat) {
    if (repeat < 1) throw py::value_error("repeat must be at least 1, got " + std::to_string(repeat));
}

}  // namespace

void register_bench(py::module_& m) {
    m.def(
        "traffic",
        [](py::sequence inplace, py::sequence readonly, double scale, long repeat) {
            check_repeat(repeat);
            std::vector<py::handle> roles;
            std::vector<std::string> names;
            gather_roles(inplace, readonly, roles, names);
            const Work w = check_work(roles, static_cast<int>(py::len(inplace)), names);
            py::gil_scoped_release nogil;
            active_target().traffic(w, scale, repeat);
        },
        py::arg("inplace"), py::arg("readonly") = py::tuple(), py::arg("scale") = 0.5, py::arg("repeat") = 1,
        "The bandwidth kernel with an optimizer's read/write pattern, through the optimizers' parallel loop.\n\n"
        "x = readonly[0] + ... + readonly[-1] (0 if none); every inplace[k] = inplace[k] * scale + x.\n"
        "Reads len(inplace) + len(readonly) arrays and writes len(inplace) (at most 6 and 4).\n"
        "Each argument is an array (one tensor) or a list of arrays (a work list of tensors; the\n"
        "k-th arrays of all arguments form tensor k). float32 or float64, C-contiguous; the\n"
        "sweep runs `repeat` times without the GIL.");
    m.def(
        "traffic_mixed",
        [](py::sequence inplace, py::sequence readonly, long repeat) {
            check_repeat(repeat);
            std::vector<py::handle> roles;
            std::vector<std::string> names;
            gather_roles(inplace, readonly, roles, names);
            const Mixed w = check_mixed(roles, static_cast<int>(py::len(inplace)), names);
            py::gil_scoped_release nogil;
            active_target().traffic_mixed(w, repeat);
        },
        py::arg("inplace"), py::arg("readonly") = py::tuple(), py::arg("repeat") = 1,
        "The traffic kernel over arrays of several element widths (a bfloat16 param and grad\n"
        "with float32 state, int8 states with float32 block scales...), in one pass through the\n"
        "optimizers' parallel loop. Each array is taken as the unsigned integers of its width:\n"
        "x = readonly[0] + ... + readonly[-1] (mod 2**32; 0 if none); inplace[k] += x (mod\n"
        "2**(8 * itemsize)). inplace[0] sets each tensor's size n; any other array holds n\n"
        "elements, or ceil(n / 64), one per block of 64 (a block scale: read or written once\n"
        "per block, with x of the block's first element). Numbers of 1, 2, 4 or 8 bytes;\n"
        "arrays or lists of arrays as for traffic(); at most 6 in-place and 4 read-only.");
    m.def(
        "triad",
        [](py::handle a, py::handle b, py::handle c, double scale, long repeat) {
            check_repeat(repeat);
            const Work w = check_work({a, b, c}, 1, {"a", "b", "c"});
            py::gil_scoped_release nogil;
            active_target().triad(w, scale, repeat);
        },
        py::arg("a"), py::arg("b"), py::arg("c"), py::arg("scale") = 3.0, py::arg("repeat") = 1,
        "The STREAM triad a = b + scale * c (reads 2 arrays, writes 1) through the optimizers'\n"
        "parallel loop. Arrays or lists of arrays as for traffic().");
}

}  // namespace fusedopt
