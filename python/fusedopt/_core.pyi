"""Type stubs of the compiled extension ``fusedopt._core`` (cpp/src/*.cpp).

Users reach it through the classes of :mod:`fusedopt`; ``build_info``,
``get_num_threads`` and ``set_num_threads`` are re-exported there, ``traffic`` and
``triad`` serve :mod:`fusedopt.bench`.
"""

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np
from typing_extensions import NotRequired

class KernelInputs(TypedDict):
    """What a kernel declares it reads (cpp/include/fusedopt/kernels/<algo>.hpp)."""

    #: The param-group keys, in the kernel's order, each with its number of values.
    hyperparameters: tuple[tuple[str, int], ...]
    #: Its element-wise state arrays, in slot order.
    state: tuple[str, ...]
    #: Its float64 scalar state, in slot order.
    scalars: tuple[str, ...]
    #: Only for kernels whose step couples tensors through sums (Prodigy, SGDHD, AdamHD):
    #: the param-group keys the step reads as floats (None: NaN) and writes back.
    group_values: NotRequired[tuple[str, ...]]

#: The fused kernels built in, by name (one per algorithm; AdamW runs "adam"), with the
#: inputs each declares; every optimizer class is checked against these at import.
kernels: dict[str, KernelInputs]

class HyperRules:
    """The rules of one optimizer class's hyperparameters (``fusedopt.rules``), compiled
    for ``kernel``; building it checks them against the kernel's declared names, widths
    and order (ValueError on a mismatch)."""

    def __init__(self, kernel: str, rules: Sequence[tuple[object, ...]]) -> None:
        """``rules``: one ``Rule.native(name)`` tuple per key of the table, in its order."""

    def check(self, group: Mapping[str, Any], where: str = "") -> None:
        """TypeError / ValueError (prefixed by ``where``) for a bad hyperparameter of ``group``."""

    @property
    def names(self) -> list[str]:
        """The table's keys, in order."""

    @property
    def kernel(self) -> str:
        """The kernel's name ("" for a class that steps itself)."""

class Plan:
    """The parameters and state of one optimizer, stepped by a fused kernel in one call.

    Checks dtypes, layouts and overlaps when built and when its state is set, re-checks
    every array at each call, and runs the kernel without the GIL.
    """

    def __init__(
        self,
        rules: HyperRules,
        params: Sequence[np.ndarray],
        group_of: Sequence[int],
        n_groups: int,
    ) -> None:
        """``group_of[i]``: the param group of ``params[i]``; ``rules``: the optimizer class's
        compiled rules, which name the kernel and check every group at each step."""

    def set_state(
        self,
        state: Sequence[Sequence[np.ndarray | None]],
        scalars: Sequence[Sequence[np.ndarray | None]],
        absmax: Sequence[Sequence[np.ndarray | None]] | None = None,
        quant: Sequence[int] = (),
    ) -> None:
        """Per parameter: its state arrays and its float64 scalar state (None where unused);
        for int8 state, each array's float32 block scales and each state slot's code
        (1 linear, 2 exponent)."""

    def step(
        self,
        grads: Sequence[np.ndarray | None],
        param_groups: Sequence[Mapping[str, Any]],
        skip_nonfinite: bool = False,
        max_grad_norm: float | None = None,
        track_grad_norm: bool = False,
        seed: int | None = None,
        sr_step: int = 0,
    ) -> tuple[bool, float, int]:
        """One step of every parameter with a grad: (False when skipped for a non-finite
        grad, the global L2 norm of the grads, NaN unless ``max_grad_norm`` or
        ``track_grad_norm``; how many grads were None, their parameters skipped). With
        ``max_grad_norm`` the update sees the grads clipped to it (not written). With
        ``seed``, half-precision parameters round stochastically, keyed by (seed, sr_step,
        parameter index, element index)."""

    def accumulate(
        self, accs: Sequence[np.ndarray], grads: Sequence[np.ndarray], count: float
    ) -> bool:
        """``accs[i] += (grads[i] - accs[i]) / count`` for every parameter (MultiSteps'
        running mean), in one sweep; whether every grad was finite."""

    def checked_grads(
        self,
        grads: Sequence[np.ndarray | None],
        param_groups: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[np.ndarray | None]:
        """The grads as the kernel would read them (checked; copied to the parameter's layout
        where it differs; None stays None); the groups' hyperparameters are checked by the
        rules when given."""

    def all_finite(self, grads: Sequence[np.ndarray | None]) -> bool:
        """Whether every grad is free of inf and NaN (grads checked as by ``step``)."""

    def __len__(self) -> int: ...
    @property
    def numel(self) -> int:
        """Elements over all parameters."""

    @property
    def kernel(self) -> str:
        """The kernel's name."""

def build_info() -> dict[str, Any]:
    """How the extension was built and runs: ``targets`` (instruction-set targets compiled
    in), ``cpu_runs`` (those this CPU runs), ``target`` (the one in use; FUSEDOPT_TARGET
    asks for another) with its ``simd`` and ``target_note``, ``march_native``, compiler,
    sanitizers, ``threads`` ("pool" or "none"), ``num_threads`` and where its default came
    from, ``pool_workers``, and the parallel loop's constants."""

def get_num_threads() -> int:
    """Threads a fused step may use (the CPUs this process may run on, or
    ``OMP_NUM_THREADS``, by default)."""

def set_num_threads(n: int) -> None:
    """Sets the threads a fused step may use (no effect in a build without threads)."""

def traffic(
    inplace: Sequence[np.ndarray],
    readonly: Sequence[np.ndarray] = (),
    scale: float = 0.5,
    repeat: int = 1,
) -> None:
    """The bandwidth kernel with an optimizer's read/write pattern, through the optimizers'
    parallel loop: ``x = sum(readonly)``; every ``inplace[k] = inplace[k] * scale + x``."""

def traffic_mixed(
    inplace: Sequence[np.ndarray | Sequence[np.ndarray]],
    readonly: Sequence[np.ndarray | Sequence[np.ndarray]] = (),
    repeat: int = 1,
) -> None:
    """The traffic kernel over arrays of several element widths (1, 2, 4 or 8 bytes), in one
    pass through the optimizers' parallel loop, each array taken as unsigned integers:
    ``x = sum(readonly) mod 2**32``; every ``inplace[k] += x`` (wrapping). An array of
    ``ceil(n / 64)`` elements (n: its tensor's, ``inplace[0]``'s size) is a block scale,
    read or written once per block of 64 with x of the block's first element."""

def triad(
    a: np.ndarray | Sequence[np.ndarray],
    b: np.ndarray | Sequence[np.ndarray],
    c: np.ndarray | Sequence[np.ndarray],
    scale: float = 3.0,
    repeat: int = 1,
) -> None:
    """The STREAM triad ``a = b + scale * c`` through the optimizers' parallel loop."""

def norm_sums(
    grads: Sequence[np.ndarray], p: float, names: Sequence[int] = ()
) -> tuple[float, list[float]]:
    """(sum of |g|^p over every grad, or max |g| for p = inf; the same per grad), in
    float64 over fixed blocks: the same bits on any number of threads. The grads must be
    aligned, contiguous float32 / float64 arrays; ``names[k]``: the index messages give
    ``grads[k]`` (its place in the caller's list)."""

def scale_grads(grads: Sequence[np.ndarray], factor: float, names: Sequence[int] = ()) -> None:
    """``grads[i] *= factor`` in place (the factor cast to each grad's dtype), one sweep."""

def clamp_grads(
    grads: Sequence[np.ndarray], lo: float, hi: float, names: Sequence[int] = ()
) -> None:
    """``grads[i] = clip(grads[i], lo, hi)`` in place (NaN stays NaN), one sweep."""

def adafactor_step(
    param: np.ndarray,
    grad: np.ndarray,
    row_var: np.ndarray | None,
    col_var: np.ndarray | None,
    variance: np.ndarray | None,
    *,
    lr: float,
    weight_decay: float,
    eps1: float,
    eps2: float,
    d: float,
    weight: float,
    rho: float,
    maximize: bool,
) -> None:
    """One Adafactor step of one parameter, in place (``fusedopt.Adafactor``'s fused
    backend), without the GIL. ``weight = step ** beta2_decay``, ``rho = min(lr, 1 /
    sqrt(step))``: the step count is the caller's. ``row_var`` / ``col_var`` for a parameter
    of 2 or more dims (else None), ``variance`` for 0 or 1 dims (else None); every array
    aligned, C-contiguous, of the parameter's dtype. Float64 sums over fixed blocks of
    rows: the same bits on any number of threads."""

def lerp_arrays(
    averages: Sequence[np.ndarray], params: Sequence[np.ndarray], weight: float
) -> None:
    """``averages[i] = lerp(averages[i], params[i], weight)`` in place (torch.lerp's formula,
    the weight rounded to the arrays' dtype), one parallel sweep without the GIL
    (``fusedopt.swa_utils``). float32 / float64, contiguous, each pair of one dtype, shape
    and layout; an average may share memory with nothing else of the call."""

def mean_arrays(averages: Sequence[np.ndarray], params: Sequence[np.ndarray], count: float) -> None:
    """``averages[i] += (params[i] - averages[i]) / count`` in place, one rounding per
    operation in the arrays' dtype (torch's SWA running mean), one parallel sweep."""

def coalesce_rows(
    indices: np.ndarray, rows: np.ndarray, n_rows: int, name: str = "grad"
) -> tuple[np.ndarray, np.ndarray]:
    """A row-sparse grad coalesced: (sorted distinct int64 indices, the sum of each one's
    rows from zero, in the given order). ``indices`` 1-D int64, ``rows`` C-contiguous
    float32/float64; ValueError (naming ``name``) for an index outside [0, n_rows)."""

def sparse_adam_rows(
    param: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    step_size: float,
    beta1: float,
    beta2: float,
    eps: float,
    scale: float,
    maximize: bool,
    name: str = "param",
) -> None:
    """torch's SparseAdam update of the rows ``indices`` (strictly increasing) of ``param``
    and its state, in place, from the coalesced ``values`` times ``scale``; the rows split
    over the thread pool, without the GIL (``fusedopt.SparseAdam``'s fused backend)."""

def axpy(alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """``y += alpha * x`` in place (alpha rounded to the arrays' dtype, the product rounded,
    then added, as NumPy's ``y += np.multiply(x, alpha)`` without its temporary), in one
    parallel sweep without the GIL. C-contiguous float32/float64 arrays of one dtype and
    size; ``y`` writeable and sharing no memory with ``x``."""

def sum_ranks(
    out: Sequence[np.ndarray],
    mine: Sequence[np.ndarray],
    received: np.ndarray,
    rank: int,
    divisor: float,
) -> None:
    """``out[t] = (x_0 + ... + x_{P-1}) / divisor`` element-wise, summed left to right in
    rank order, where this rank's values are ``mine[t]`` and rank q's the matching slice of
    ``received``'s row q (q < rank) or q - 1 (q > rank); ``out[t]`` may be ``mine[t]``. The
    arrays of ``out`` laid end to end span one row of ``received`` (C-contiguous, one
    float dtype). One parallel sweep without the GIL (``fusedopt.distributed``)."""
