"""Checkpoints that survive a crash: one ``.npz`` file, written atomically.

:func:`save_checkpoint` writes an optimizer (its parameters, state, hyperparameters and
``skipped_steps``), optionally a learning-rate schedule, and any arrays of yours into one
``.npz`` file. The file is written next to its destination under a temporary name,
flushed to disk (``fsync``) and renamed over the destination in one step (``os.replace``),
and the directory is synced: a crash or a kill at any moment leaves either the previous
checkpoint or the new one, complete, never a mixture or a truncated file.

:func:`load_checkpoint` reads it back with ``allow_pickle=False`` (a checkpoint is data,
never code), checks it against the optimizer and schedule you give it, then restores
them, all or nothing: a checkpoint of another algorithm, of other shapes or dtypes, or a
damaged file is a clear error (``ValueError``; ``TypeError`` for a dtype) and changes
nothing.

>>> import numpy as np, fusedopt as fo, tempfile, os
>>> w = np.ones(3)
>>> opt = fo.Adam([w], lr=0.1)
>>> opt.step([np.ones(3)])
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
>>> fo.save_checkpoint(path, opt, epoch=np.array(1))
>>> w[:] = 0                              # ... a crash, a new process ...
>>> fo.load_checkpoint(path, opt)["epoch"]
array(1)
>>> w
array([0.9, 0.9, 0.9])

File layout: an ordinary ``.npz`` (a zip of ``.npy`` files), readable by ``numpy.load``:

* ``__fusedopt_checkpoint__``: a 0-d string array holding JSON metadata: the format
  version, the optimizer's class name, its param groups (hyperparameters, and the indices
  of their parameters), each parameter's shape and dtype, the names of its state, the
  schedule's class name and state dict, and the names of your arrays. Tuples, dicts with
  non-string keys and non-finite floats are tagged so that they come back as they were.
* ``param/<i>``: the value of each parameter, in the order of ``param_groups``.
* ``state/<i>/<name>``: the state arrays and scalars of parameter ``i``.
* ``array/<name>``: your arrays, given to :func:`save_checkpoint` as keywords.
* ``blob/<k>``: arrays found inside the schedule's state dict or the param groups.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import numpy as np

from .low_precision import bfloat16
from .optimizer import Optimizer, _a

__all__ = ["FORMAT_VERSION", "load_checkpoint", "save_checkpoint"]

#: The version of the file layout this module writes (and the newest it reads).
FORMAT_VERSION = 1
_META = "__fusedopt_checkpoint__"

PathLike = str | os.PathLike[str]


class _Stateful(Protocol):
    def state_dict(self) -> Mapping[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None: ...


# ---------------------------------------------------------------- JSON, losslessly


def _encode(obj: Any, blobs: dict[str, np.ndarray], where: str) -> Any:
    """``obj`` as JSON data; arrays go to ``blobs``. TypeError for what a file cannot hold."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, np.generic) and not isinstance(obj, np.void | np.object_):
        return _encode(obj.item(), blobs, where)
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or obj.dtype.kind == "V":
            raise TypeError(f"{where}: cannot save an array of dtype {obj.dtype} (no pickle)")
        key = f"blob/{len(blobs)}"
        blobs[key] = np.array(obj, copy=True)
        return {"__array__": key}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, blobs, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, blobs, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, blobs, f"{where}[{k!r}]") for k, v in obj.items()}
        return {
            "__dict__": [
                [_encode(k, blobs, f"{where} key"), _encode(v, blobs, f"{where}[{k!r}]")]
                for k, v in obj.items()
            ]
        }
    raise TypeError(
        f"{where}: cannot save a {type(obj).__name__} in a checkpoint (it holds numbers, "
        "strings, lists, tuples, dicts and arrays)"
    )


def _decode(obj: Any, blobs: Mapping[str, np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, blobs) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        ((tag, value),) = obj.items()
        if tag == "__float__":
            return float(value)
        if tag == "__array__":
            return np.array(_entry(blobs, value), copy=True)
        if tag == "__tuple__":
            return tuple(_decode(v, blobs) for v in value)
        if tag == "__dict__":
            return {_hashable(_decode(k, blobs)): _decode(v, blobs) for k, v in value}
    return {k: _decode(v, blobs) for k, v in obj.items()}


def _hashable(key: Any) -> Any:
    if isinstance(key, list | dict | np.ndarray):
        raise ValueError("damaged checkpoint: a dict key is not hashable")
    return key


def _entry(entries: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    if key not in entries:
        raise ValueError(f"damaged checkpoint: it has no entry {key!r}")
    return entries[key]


# ------------------------------------------------------------------------- writing


def _params(optimizer: Optimizer) -> list[np.ndarray]:
    return [p for g in optimizer.param_groups for p in g["params"]]


def save_checkpoint(
    path: PathLike,
    optimizer: Optimizer,
    scheduler: _Stateful | None = None,
    **arrays: Any,
) -> None:
    """Writes ``optimizer`` (parameters, state, hyperparameters), ``scheduler`` and
    ``arrays`` to the ``.npz`` file ``path``, atomically.

    Args:
        path: the file to write (its name is used as given: no ``.npz`` is appended). Its
            directory must exist. An existing file is replaced only once the new one is
            complete and on disk.
        optimizer: a fusedopt optimizer. Its parameters' values are saved too: they are
            what the optimizer trains.
        scheduler: optional; any object with ``state_dict()`` / ``load_state_dict()``, such
            as a :mod:`fusedopt.lr_scheduler` schedule. Its state dict may hold numbers,
            strings, lists, tuples, dicts and arrays.
        arrays: your arrays (model buffers, the epoch, a random state, ...), by name.

    Raises:
        TypeError: an argument of the wrong type, or something that cannot be saved
            without pickle (nothing is written then).
        OSError: the file could not be written (the previous checkpoint, if any, is intact).
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fusedopt Optimizer, got {type(optimizer).__name__}")
    if scheduler is not None and not (
        callable(getattr(scheduler, "state_dict", None))
        and callable(getattr(scheduler, "load_state_dict", None))
    ):
        raise TypeError(
            "scheduler must have state_dict() and load_state_dict(), "
            f"got {type(scheduler).__name__}"
        )
    entries: dict[str, np.ndarray] = {}
    blobs: dict[str, np.ndarray] = {}
    with optimizer.locked():  # one consistent snapshot, even while another thread steps
        sd = optimizer.state_dict()
        params = _params(optimizer)
        for i, p in enumerate(params):
            entries[f"param/{i}"] = np.array(p, copy=True, order="K")
        skipped = optimizer.skipped_steps
    state_names: dict[str, list[str]] = {}
    for i, st in sd["state"].items():
        state_names[str(i)] = sorted(st)
        for name, value in st.items():
            entries[f"state/{i}/{name}"] = np.asarray(value)
    groups = [
        _encode(dict(g), blobs, f"param_groups[{gi}]") for gi, g in enumerate(sd["param_groups"])
    ]
    sched = None
    if scheduler is not None:
        sched = {
            "class": type(scheduler).__name__,
            "state": _encode(dict(scheduler.state_dict()), blobs, "scheduler.state_dict()"),
        }
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.dtype.hasobject or a.dtype.kind == "V":
            raise TypeError(f"array {name!r} has dtype {a.dtype}: a checkpoint holds no objects")
        entries[f"array/{name}"] = a
    meta = {
        "format": "fusedopt-checkpoint",
        "version": FORMAT_VERSION,
        "optimizer": {
            "class": type(optimizer).__name__,
            "param_groups": groups,
            "params": [{"shape": list(p.shape), "dtype": p.dtype.str} for p in params],
            "state": state_names,
            "skipped_steps": int(skipped),
            **(
                {"stochastic_rounding": dict(sd["stochastic_rounding"])}
                if "stochastic_rounding" in sd
                else {}
            ),
        },
        "scheduler": sched,
        "arrays": list(arrays),
    }
    # bfloat16 (ml_dtypes) has no .npy type: such arrays are saved as their uint16 bits
    bits = [k for k, a in entries.items() if a.dtype.kind == "V" and a.dtype.name == "bfloat16"]
    for k in bits:
        entries[k] = entries[k].view(np.uint16)
    if bits:
        meta["bfloat16"] = bits
    entries.update(blobs)
    entries[_META] = np.array(json.dumps(meta, allow_nan=False))
    _write_atomically(os.fspath(path), entries)


def _write_atomically(path: str, entries: Mapping[str, Any]) -> None:
    """Writes ``entries`` as an npz to a temporary file beside ``path``, syncs it, and
    renames it to ``path``; the temporary file is removed if anything fails. Errors
    name ``path``, never the temporary file."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            errno.ENOENT, f"cannot write the checkpoint: no directory {directory!r}", path
        )
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
        )
    except OSError as e:
        raise type(e)(e.errno, f"cannot write the checkpoint: {e.strerror}", path) from e
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_directory(directory)


def _sync_directory(directory: str) -> None:
    """Makes the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------- reading


_ZIP_MAGIC = b"PK\x03\x04"


def _read(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every entry of the checkpoint, and its metadata; ValueError naming ``path`` for a
    file that is not an intact checkpoint.

    Every member of the ``.npz`` is read whole, so zipfile checks its CRC-32: a damaged
    byte of any array or of the metadata is caught here. Whatever a damaged zip or
    ``.npy`` header makes the readers raise (BadZipFile, a "password required"
    RuntimeError for a flipped encryption flag, NotImplementedError for a flipped
    compression method, struct errors, absurd sizes, ...) becomes that ValueError.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    name = os.fspath(path)
    # Our own file object: numpy leaks its own when the zip is unreadable. Opening errors
    # (no such file, a directory, no permission) are the user's to see as they are.
    with open(path, "rb") as f:
        try:
            if f.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
                raise ValueError("it is not an .npz file (a zip archive)")
            f.seek(0)
            with np.load(f, allow_pickle=False) as npz:
                entries = {k: npz[k] for k in npz.files}
        except Exception as e:
            raise ValueError(f"{name!r} is not a readable checkpoint: {e}") from e
    if _META not in entries:
        raise ValueError(f"{name!r} is an .npz but not a fusedopt checkpoint")
    try:
        meta = json.loads(str(entries.pop(_META)))
        ok = isinstance(meta, dict) and meta.get("format") == "fusedopt-checkpoint"
    except (ValueError, TypeError) as e:
        raise ValueError(f"damaged checkpoint {name!r}: {e}") from e
    if not ok:
        raise ValueError(f"damaged checkpoint {name!r}: no fusedopt metadata")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {name!r} has format version {version!r}; this fusedopt reads "
            f"up to {FORMAT_VERSION}"
        )
    bits = meta.get("bfloat16", [])
    if not isinstance(bits, list) or not all(
        isinstance(k, str) and k in entries and entries[k].dtype == np.uint16 for k in bits
    ):
        raise ValueError(f"damaged checkpoint {name!r}: its list of bfloat16 arrays")
    for k in bits:
        entries[k] = entries[k].view(bfloat16())
    return entries, meta


def _optimizer_plan(
    optimizer: Optimizer, saved: Any, entries: Mapping[str, np.ndarray]
) -> tuple[dict[str, Any], list[np.ndarray], int]:
    """Checks the checkpoint's optimizer against ``optimizer``: the state dict to load, the
    parameter values to copy in, and skipped_steps. Raises before anything changes."""
    if not isinstance(saved, dict):
        raise ValueError("the checkpoint holds no optimizer")
    mine, theirs = type(optimizer).__name__, saved.get("class")
    if theirs != mine:
        raise ValueError(
            f"the checkpoint holds the state of {_a(str(theirs))} optimizer, not {_a(mine)}"
        )
    groups = _decode(saved.get("param_groups"), entries)
    shapes = saved.get("params")
    if not isinstance(groups, list) or not isinstance(shapes, list):
        raise ValueError("damaged checkpoint: no param groups")
    params = _params(optimizer)
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    saved_sizes = [len(g.get("params", ())) if isinstance(g, dict) else -1 for g in groups]
    if saved_sizes != sizes or len(shapes) != len(params):
        raise ValueError(
            f"the checkpoint's optimizer has param groups of {saved_sizes} parameters, "
            f"this one {sizes}"
        )
    values = []
    for i, (p, info) in enumerate(zip(params, shapes, strict=True)):
        v = _entry(entries, f"param/{i}")
        if not isinstance(info, dict) or (info.get("shape"), info.get("dtype")) != (
            list(v.shape),
            v.dtype.str,
        ):
            raise ValueError(f"damaged checkpoint: params[{i}] is not as its description says")
        if v.shape != p.shape:
            raise ValueError(f"params[{i}] has shape {p.shape}, the checkpoint's {v.shape}")
        if v.dtype != p.dtype:
            raise TypeError(f"params[{i}] is {p.dtype}, the checkpoint's {v.dtype}")
        if not p.flags.writeable:
            raise ValueError(f"params[{i}] is read-only: the checkpoint cannot be loaded into it")
        values.append(v)
    names = saved.get("state")
    if not isinstance(names, dict):
        raise ValueError("damaged checkpoint: no state")
    state = {
        int(i): {name: _entry(entries, f"state/{i}/{name}") for name in keys}
        for i, keys in names.items()
    }
    skipped = saved.get("skipped_steps", 0)
    if not isinstance(skipped, int) or isinstance(skipped, bool) or skipped < 0:
        raise ValueError("damaged checkpoint: skipped_steps is not a count")
    out: dict[str, Any] = {"state": state, "param_groups": groups}
    if "stochastic_rounding" in saved:  # where the rounding generator stands
        out["stochastic_rounding"] = saved["stochastic_rounding"]
    return out, values, skipped


@contextlib.contextmanager
def _about(path: PathLike) -> Iterator[None]:
    """Errors in the block name the checkpoint's path; those a damaged (hand-edited) file
    provokes in the decoding (KeyError, AttributeError, IndexError) become ValueError."""
    name = os.fspath(path)
    try:
        yield
    except (KeyError, AttributeError, IndexError) as e:
        raise ValueError(f"damaged checkpoint {name!r}: {e!r}") from e
    except (ValueError, TypeError) as e:
        if repr(name) in str(e):
            raise
        kind = TypeError if isinstance(e, TypeError) else ValueError
        raise kind(f"checkpoint {name!r}: {e}") from e


def load_checkpoint(
    path: PathLike,
    optimizer: Optimizer | None = None,
    scheduler: _Stateful | None = None,
) -> dict[str, np.ndarray]:
    """Restores a checkpoint written by :func:`save_checkpoint`; returns your arrays.

    Args:
        path: the checkpoint file.
        optimizer: optional; an optimizer of the same class, with parameters of the same
            shapes and dtypes, in the same param groups. Its parameters (in place: your
            arrays), state, hyperparameters and ``skipped_steps`` are restored.
        scheduler: optional; a schedule of the same class as the one saved.

    Returns:
        The arrays saved as keywords, by name.

    Raises:
        ValueError: the file is not a readable checkpoint, or it does not fit ``optimizer``
            or ``scheduler`` (another algorithm, other shapes, other param groups).
        TypeError: a parameter's dtype differs from the saved one's.
        OSError: the file cannot be opened.

    Every check runs before anything changes; if restoring the scheduler fails, the
    optimizer is put back as it was.
    """
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fusedopt Optimizer, got {type(optimizer).__name__}")
    entries, meta = _read(path)
    with _about(path):
        out = {str(n): _entry(entries, f"array/{n}") for n in meta.get("arrays", [])}
        saved_sched = meta.get("scheduler")
        if scheduler is not None:
            if not isinstance(saved_sched, dict):
                raise ValueError("the checkpoint holds no scheduler")
            if saved_sched.get("class") != type(scheduler).__name__:
                raise ValueError(
                    f"the checkpoint holds {_a(str(saved_sched.get('class')))} schedule, "
                    f"not {_a(type(scheduler).__name__)}"
                )
            sched_state = _decode(saved_sched.get("state"), entries)
            if not isinstance(sched_state, dict):
                raise ValueError("damaged checkpoint: the schedule's state is not a dict")
        plan = None
        if optimizer is not None:
            plan = _optimizer_plan(optimizer, meta.get("optimizer"), entries)
    if plan is None:
        if scheduler is not None:
            scheduler.load_state_dict(sched_state)
        return out
    assert optimizer is not None
    sd, values, skipped = plan
    with _about(path), optimizer.transaction():  # all or nothing: a failure puts all back
        optimizer.load_state_dict(sd)  # checks everything before changing anything
        for p, v in zip(_params(optimizer), values, strict=True):
            np.copyto(p, v)
        optimizer.skipped_steps = skipped
        if scheduler is not None:
            old_sched = scheduler.state_dict()
            try:
                scheduler.load_state_dict(sched_state)
            except BaseException:
                with contextlib.suppress(Exception):
                    scheduler.load_state_dict(old_sched)
                raise
    return out
