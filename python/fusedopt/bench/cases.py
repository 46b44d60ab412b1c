"""What the benchmark runs: optimizer variants, their memory-traffic patterns, and cases.

A :class:`Variant` is an optimizer configuration (every exported optimizer with its
defaults, plus :data:`EXTRA_VARIANTS`); its :class:`Pattern` is the number of arrays a
step reads and writes per element; a :class:`Case` is a set of parameter shapes stepped
together (one tensor of 2^k elements, 1000 small tensors, a CNN-like model, 1 element).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import fusedopt
from fusedopt._registry import optimizer_classes

__all__ = [
    "DEFAULT_SIZES",
    "EXTRA_VARIANTS",
    "Case",
    "Pattern",
    "Variant",
    "default_cases",
    "make_arrays",
    "many_case",
    "model_case",
    "overhead_case",
    "size_case",
    "traffic_pattern",
    "variants",
]


#: Exponents of the single-tensor sizes of a default run: 2^10 ... 2^25 elements.
DEFAULT_SIZES = (10, 13, 16, 19, 22, 25)
#: Variants timed besides each optimizer's defaults (they change the read/write pattern).
EXTRA_VARIANTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "SGD": [("sgd-momentum", {"momentum": 0.9})],
    "Adam": [("adam-amsgrad", {"amsgrad": True})],
    # t0=0: averaging from the second step on (by default ax is a copy of p, never read)
    "ASGD": [("asgd-averaging", {"t0": 0.0})],
}


# --------------------------------------------------------------------------- what to run
@dataclass(frozen=True)
class Variant:
    """An optimizer configuration: a readable id, the class and its keyword arguments."""

    id: str
    cls: type[fusedopt.Optimizer]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def make(self, params: list[np.ndarray], backend: str) -> fusedopt.Optimizer:
        """A new optimizer of this configuration over ``params``, ready to step (in train
        mode, for the classes that have one: the Schedule-Free optimizers)."""
        opt = self.cls(params, backend=backend, **self.kwargs)
        train = getattr(opt, "train", None)
        if callable(train):
            train()
        return opt


def variants(names: Iterable[str] | None = None) -> list[Variant]:
    """The optimizer configurations to time: each exported optimizer with its defaults,
    plus :data:`EXTRA_VARIANTS`.

    ``names`` (case-insensitive) keeps a class with all its variants (``"adam"``) or one
    variant (``"adam-amsgrad"``); ValueError for an unknown name.
    """
    every: list[Variant] = []
    for cls in optimizer_classes(fused_kernel=True).values():
        every.append(Variant(cls.__name__.lower(), cls, {}))
        every.extend(Variant(vid, cls, kw) for vid, kw in EXTRA_VARIANTS.get(cls.__name__, []))
    if names is None:
        return every
    wanted = [n.strip().lower() for n in names if n.strip()]
    known = {v.id for v in every}
    for n in wanted:
        if n not in known:
            raise ValueError(f"unknown optimizer {n!r}; choose from {', '.join(sorted(known))}")
    return [v for v in every if v.id in wanted or v.cls.__name__.lower() in wanted]


@dataclass(frozen=True)
class Pattern:
    """An optimizer step's memory traffic: arrays read and written per element."""

    reads: int
    writes: int

    @property
    def readonly(self) -> int:
        """Arrays only read (the grad)."""
        return self.reads - self.writes

    def bytes(self, numel: int, itemsize: int) -> int:
        """Bytes one step moves over ``numel`` elements of ``itemsize`` bytes."""
        return numel * itemsize * (self.reads + self.writes)

    def __str__(self) -> str:
        return f"{self.reads}R{self.writes}W"


def traffic_pattern(variant: Variant) -> Pattern:
    """The read/write pattern of ``variant``, from the state arrays it keeps.

    A step reads the param, the grad and ``s`` state arrays and writes the param and the
    ``s`` state arrays back: ``(2 + s)R(1 + s)W``.
    """
    p = np.zeros(8)
    opt = variant.make([p], "fused")
    opt.step([np.full(8, 0.5)])
    n_state = sum(1 for v in opt.state[0].values() if np.shape(v) == p.shape) if opt.state else 0
    return Pattern(2 + n_state, 1 + n_state)


@dataclass(frozen=True)
class Case:
    """A set of parameter shapes, stepped together."""

    name: str
    shapes: tuple[tuple[int, ...], ...]

    @property
    def n_tensors(self) -> int:
        """Number of parameter tensors."""
        return len(self.shapes)

    @property
    def numel(self) -> int:
        """Total number of elements."""
        return sum(math.prod(s) for s in self.shapes)


def size_case(exponent: int) -> Case:
    """One tensor of ``2**exponent`` elements."""
    return Case(f"2^{exponent}", ((1 << exponent,),))


def many_case(count: int = 1000, size: int = 256) -> Case:
    """``count`` tensors of ``size`` elements (a step dominated by per-tensor overhead)."""
    return Case(f"{count}x{size}", ((size,),) * count)


def model_case() -> Case:
    """A 160-tensor CNN-like model of 11.18 M parameters.

    39 blocks of a 3x3 convolution (weight and bias) and a batch norm (weight and bias)
    -- 14 blocks of 64 channels, 14 of 128, 9 of 256, 2 of 512 -- then a 256-unit
    hidden layer and a 10-class output layer (weight and bias each): 117 small vectors
    and 43 large tensors, as in a ResNet-18.
    """
    shapes: list[tuple[int, ...]] = []
    cin = 3
    for channels, blocks in ((64, 14), (128, 14), (256, 9), (512, 2)):
        for _ in range(blocks):
            shapes += [(channels, cin, 3, 3), (channels,), (channels,), (channels,)]
            cin = channels
    shapes += [(256, cin), (256,), (10, 256), (10,)]
    return Case("model-160", tuple(shapes))


def overhead_case() -> Case:
    """One 1-element tensor: the cost of a step that does no work."""
    return Case("1-element", ((1,),))


def default_cases(sizes: Sequence[int] = DEFAULT_SIZES) -> list[Case]:
    """The single-tensor sizes, then 1000x256, the 160-tensor model and the 1-element case."""
    return [*(size_case(k) for k in sizes), many_case(), model_case(), overhead_case()]


def make_arrays(
    case: Case, dtype: np.dtype | str, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random parameters (standard normal) and grads (normal, scale 0.1) for ``case``."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    params = [rng.standard_normal(s, dtype=dt) for s in case.shapes]
    grads = [rng.standard_normal(s, dtype=dt) * dt.type(0.1) for s in case.shapes]
    return params, grads
