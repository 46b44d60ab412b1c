"""Checkpoints: a lossless round trip, clear refusals that change nothing, and atomic
writes that survive a writer killed mid-save."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fusedopt as fo

from .helpers import fingerprint, grads_for
from .hypothesis_settings import SANITIZED, examples
from .table import CONFIGS, ROWS


class Counter:
    """A minimal stateful object (what a schedule is to a checkpoint)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = state or {"count": 0}
        self.fail = False

    def state_dict(self) -> dict[str, Any]:
        return dict(self.state)

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if self.fail:  # fails once, half-way
            self.fail = False
            self.state = {"half": "loaded"}
            raise ValueError("refused")
        self.state = dict(sd)


def make(cls, kwargs, seed: int, steps: int, backend: str = "fused"):
    rng = np.random.default_rng(seed)
    params = [
        rng.standard_normal((4, 3)),
        rng.standard_normal(5).astype(np.float32),
        np.asfortranarray(rng.standard_normal((3, 2))),
        np.asarray(rng.standard_normal(())),
    ]
    opt = cls(
        [{"params": params[:2]}, {"params": params[2:], "lr": 0.003}], backend=backend, **kwargs
    )
    for _ in range(steps):
        opt.step([np.asarray(rng.standard_normal(p.shape), p.dtype) for p in params])
    return params, opt


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_round_trip_resumes_bit_identically(cls, kwargs, backend, tmp_path):
    params, opt = make(cls, kwargs, 1, 3, backend)
    opt.skipped_steps = 2
    sched = fo.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    sched.step()
    rng_state = str(np.random.default_rng(5).bit_generator.state["state"]["state"])
    path = tmp_path / "ckpt.npz"
    fo.save_checkpoint(path, opt, sched, epoch=np.array(7), rng=np.array(rng_state))
    # a fresh process would build the same optimizer from fresh arrays, then load
    fresh, opt2 = make(cls, kwargs, 2, 0, backend)
    sched2 = fo.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    arrays = fo.load_checkpoint(path, opt2, sched2)
    assert arrays["epoch"] == 7 and arrays["rng"] == rng_state
    assert fingerprint(opt2, fresh) == fingerprint(opt, params)
    assert sched2.state_dict() == sched.state_dict()
    for k in range(4):  # and the two go on identically
        for o, s, ps in ((opt, sched, params), (opt2, sched2, fresh)):
            o.step(grads_for(ps, 100 + k))
            s.step()
    assert fingerprint(opt2, fresh) == fingerprint(opt, params)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_load_into_another_algorithm_shape_or_dtype_is_refused_and_changes_nothing(
    cls, kwargs, tmp_path
):
    params, opt = make(cls, kwargs, 1, 2)
    path = tmp_path / "ckpt.npz"
    fo.save_checkpoint(path, opt)
    other = next((c, k) for _, c, k in ROWS if c is not cls)
    rng = np.random.default_rng(3)
    candidates: list[tuple[Any, type[Exception], str]] = []
    ps, o = make(*other, 4, 1)
    candidates.append(((ps, o), ValueError, f"not an? {other[0].__name__}"))
    shaped = [rng.standard_normal((4, 3)), rng.standard_normal(6).astype(np.float32)]
    shaped += [np.asfortranarray(rng.standard_normal((3, 2))), np.asarray(rng.standard_normal(()))]
    typed = [rng.standard_normal((4, 3)), rng.standard_normal(5)]
    typed += [np.asfortranarray(rng.standard_normal((3, 2))), np.asarray(rng.standard_normal(()))]
    for ps, exc, match in (
        (shaped, ValueError, r"params\[1\] has shape"),
        (typed, TypeError, r"params\[1\]"),
    ):
        o = cls([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.003}], **kwargs)
        o.step(grads_for(ps, 9))
        candidates.append(((ps, o), exc, match))
    ps = [p.copy(order="K") for p in params]
    o = cls([{"params": ps}], **kwargs)  # one group, not two
    candidates.append(((ps, o), ValueError, "param groups"))
    ps = [p.copy(order="K") for p in params[:3]]
    o = cls([{"params": ps[:2]}, {"params": ps[2:]}], **kwargs)  # a parameter fewer
    candidates.append(((ps, o), ValueError, "param groups"))
    for (ps, o), exc, match in candidates:
        before = fingerprint(o, ps)
        with pytest.raises(exc, match=match):
            fo.load_checkpoint(path, o)
        assert fingerprint(o, ps) == before


def test_scheduler_mismatch_or_failure_changes_nothing(tmp_path):
    _, opt = make(fo.Adam, {"lr": 0.01}, 1, 2)
    path = tmp_path / "ckpt.npz"
    fo.save_checkpoint(path, opt, Counter({"count": 5}))
    fo.save_checkpoint(tmp_path / "bare.npz", opt)
    ps, o = make(fo.Adam, {"lr": 0.01}, 2, 1)
    sched = fo.lr_scheduler.StepLR(o, step_size=2)
    before = fingerprint(o, ps)
    with pytest.raises(ValueError, match="a Counter schedule, not a StepLR"):
        fo.load_checkpoint(path, o, sched)
    with pytest.raises(ValueError, match="no scheduler"):
        fo.load_checkpoint(tmp_path / "bare.npz", o, Counter())
    failing = Counter({"count": 1})
    failing.fail = True
    with pytest.raises(ValueError, match="refused"):
        fo.load_checkpoint(path, o, failing)
    assert fingerprint(o, ps) == before  # the optimizer was put back
    assert failing.state == {"count": 1}  # and the schedule too


def test_arbitrary_schedule_state_and_arrays_come_back_exactly(tmp_path):
    state = {
        "ints": {1: 2, 30: 1},
        "tuple": (1, 2.5, "x"),
        "nested": [{"a": (None, True)}, [float("inf"), float("-inf")]],
        "nan": float("nan"),
        "array": np.arange(3.0),
        "numpy-scalars": [np.float32(0.5), np.int64(3), np.bool_(True)],
        "__dunder": "kept",
    }
    _, opt = make(fo.SGD, {"lr": 0.1}, 1, 1)
    path = tmp_path / "c.npz"
    fo.save_checkpoint(
        path, opt, Counter(state), big=np.ones((2, 3), np.int16), text=np.array("hi")
    )
    back = Counter()
    arrays = fo.load_checkpoint(path, scheduler=back)
    got = back.state
    assert got["ints"] == {1: 2, 30: 1} and got["tuple"] == (1, 2.5, "x")
    assert got["nested"] == [{"a": (None, True)}, [float("inf"), float("-inf")]]
    assert np.isnan(got["nan"]) and got["__dunder"] == "kept"
    np.testing.assert_array_equal(got["array"], np.arange(3.0))
    assert got["numpy-scalars"] == [0.5, 3, True]
    assert arrays["big"].dtype == np.int16 and arrays["text"] == "hi"
    with np.load(path, allow_pickle=False) as npz:  # an ordinary npz, no pickle inside
        assert "__fusedopt_checkpoint__" in npz.files


def test_unsavable_values_raise_before_anything_is_written(tmp_path):
    params, opt = make(fo.Adam, {"lr": 0.01}, 1, 1)
    path = tmp_path / "c.npz"
    fo.save_checkpoint(path, opt)
    first = path.read_bytes()
    opt.step(grads_for(params, 3))
    for kwargs in (
        {"scheduler": Counter({"fn": len})},
        {"scheduler": Counter({"obj": object()})},
        {"scheduler": Counter({"arr": np.array([object()])})},
        {"bad": np.array([1, "a"], dtype=object)},
        {"scheduler": object()},
    ):
        with pytest.raises(TypeError):
            fo.save_checkpoint(path, opt, **kwargs)
        assert path.read_bytes() == first
    opt.param_groups[0]["note"] = object()
    with pytest.raises(TypeError, match="param_groups"):
        fo.save_checkpoint(path, opt)
    assert path.read_bytes() == first
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]  # no temporary file left behind
    with pytest.raises(TypeError):
        fo.save_checkpoint(3, opt)
    with pytest.raises(TypeError):
        fo.save_checkpoint(path, "opt")


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    params, opt = make(fo.Adam, {"lr": 0.01}, 1, 1)
    path = tmp_path / "c.npz"
    fo.save_checkpoint(path, opt)
    first = path.read_bytes()
    os.chmod(path, 0o640)

    def broken_savez(f, **entries):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    opt.step(grads_for(params, 3))
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        fo.save_checkpoint(path, opt)
    monkeypatch.undo()
    assert path.read_bytes() == first
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]
    fo.save_checkpoint(path, opt)  # a replaced checkpoint keeps its permissions
    assert os.stat(path).st_mode & 0o777 == 0o640
    with pytest.raises(FileNotFoundError):
        fo.save_checkpoint(tmp_path / "missing-dir" / "c.npz", opt)


@pytest.mark.parametrize(
    "damage",
    ["truncate", "garbage", "empty", "flip-byte", "plain-npz", "npy", "pickle", "meta", "version"],
)
def test_damaged_files_are_a_clear_error_and_change_nothing(damage, tmp_path):
    _, opt = make(fo.Adam, {"lr": 0.01}, 1, 2)
    path = tmp_path / "c.npz"
    fo.save_checkpoint(path, opt, x=np.arange(1000.0))
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(2000))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "flip-byte":  # inside the data of an array: the zip's CRC catches it
        i = data.index(np.arange(1000.0)[500:501].tobytes())
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    elif damage == "plain-npz":
        np.savez(path, a=np.zeros(3))
    elif damage == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif damage == "pickle":
        with open(path, "wb") as f:
            np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif damage == "meta":
        with np.load(path) as z:
            entries = dict(z)
        entries["__fusedopt_checkpoint__"] = np.array("{not json")
        np.savez(path, **entries)
    elif damage == "version":
        with np.load(path) as z:
            entries = dict(z)
        entries["__fusedopt_checkpoint__"] = np.array(
            str(entries["__fusedopt_checkpoint__"]).replace('"version": 1', '"version": 99')
        )
        np.savez(path, **entries)
    ps, o = make(fo.Adam, {"lr": 0.01}, 2, 1)
    before = fingerprint(o, ps)
    with pytest.raises(ValueError):
        fo.load_checkpoint(path, o)
    assert fingerprint(o, ps) == before
    with pytest.raises(FileNotFoundError):
        fo.load_checkpoint(tmp_path / "nope.npz", o)


def flip_outcomes(data: bytes, path: Path, load: Any) -> dict[str, int]:
    """Loads ``data`` with each single byte flipped in turn (xor 0xFF) through ``load``;
    counts the outcomes. Anything but a ValueError naming the path, or a load of the
    identical values, fails at once."""
    counts = {"ValueError": 0, "identical": 0}
    for i in range(len(data)):
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
        try:
            same = load()
        except ValueError as e:
            assert repr(str(path)) in str(e), (i, e)
            counts["ValueError"] += 1
            continue
        except Exception as e:  # the test is that nothing else escapes
            pytest.fail(f"flipping byte {i} of {len(data)} raised {type(e).__name__}: {e}")
        assert same, f"flipping byte {i} of {len(data)} loaded other values"
        counts["identical"] += 1
    return counts


def test_every_single_byte_flip_is_a_value_error_or_loads_the_identical_values(tmp_path):
    """Each byte of a small checkpoint (optimizer, schedule, an array) flipped in turn:
    the zip's CRC-32 guards every array and the metadata, and whatever a damaged header
    makes zipfile or numpy raise (an "encrypted" flag, an unknown compression method,
    absurd sizes) is a ValueError naming the file. Bytes nobody reads (time stamps,
    the copies of sizes in the local headers) load the very same values."""
    w, b = np.linspace(-1, 1, 6).reshape(2, 3), np.arange(3, dtype=np.float32)
    opt = fo.Adam([w, b], lr=0.01, amsgrad=True)
    sched = fo.lr_scheduler.StepLR(opt, 2, 0.5)
    for t in range(3):
        opt.step(grads_for([w, b], t))
        sched.step()
    good = tmp_path / "good.npz"
    fo.save_checkpoint(good, opt, sched, epoch=np.array(3))
    data = good.read_bytes()
    ps = [np.zeros_like(w), np.zeros_like(b)]
    twin = fo.Adam(ps, lr=0.01, amsgrad=True)
    twin_sched = fo.lr_scheduler.StepLR(twin, 2, 0.5)
    reference = fo.load_checkpoint(good, twin, twin_sched)
    expected = (fingerprint(twin, ps), repr(twin_sched.state_dict()), repr(reference))
    path = tmp_path / "flipped.npz"

    def load() -> bool:
        out = fo.load_checkpoint(path, twin, twin_sched)
        return (fingerprint(twin, ps), repr(twin_sched.state_dict()), repr(out)) == expected

    counts = flip_outcomes(data, path, load)
    assert counts["ValueError"] > len(data) // 2  # most bytes are guarded data
    assert sum(counts.values()) == len(data)


def test_io_errors_name_the_users_path(tmp_path):
    _, opt = make(fo.SGD, {"lr": 0.1}, 1, 1)
    target = tmp_path / "missing-dir" / "c.npz"
    with pytest.raises(FileNotFoundError, match="missing-dir") as info:
        fo.save_checkpoint(target, opt)
    assert info.value.filename == str(target)
    assert not (tmp_path / "missing-dir").exists()
    path = tmp_path / "c.npz"
    fo.save_checkpoint(path, opt)
    _, other = make(fo.Adam, {"lr": 0.1}, 1, 1)
    with pytest.raises(ValueError, match=r"c\.npz.*an SGD optimizer, not an Adam"):
        fo.load_checkpoint(path, other)
    path.write_bytes(b"\x00" + path.read_bytes()[1:])  # no zip magic: not "allow_pickle"
    with pytest.raises(ValueError, match=r"c\.npz.*not an \.npz") as info:
        fo.load_checkpoint(path, opt)
    assert "pickle" not in str(info.value)


@st.composite
def damaged_metadata(draw: st.DrawFn, meta: str) -> str:
    """The metadata JSON with a few characters replaced, removed or repeated."""
    chars = list(meta)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(chars) - 1))
        how = draw(st.sampled_from(["replace", "delete", "repeat"]))
        if how == "replace":
            chars[i] = draw(st.sampled_from(list('0123456789[]{}":,.-etnaflsurNI ')))
        elif how == "delete":
            del chars[i]
        else:
            chars.insert(i, chars[i])
    return "".join(chars)


@examples(200)
@given(data=st.data())
def test_fuzz_damaged_metadata_is_refused_or_fits(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("meta")
    _, opt = make(fo.Adam, {"lr": 0.01, "amsgrad": True}, 1, 2)
    path = tmp / "c.npz"
    fo.save_checkpoint(path, opt, Counter({"count": 3, "t": (1, 2)}), x=np.arange(3))
    with np.load(path) as z:
        entries = dict(z)
    meta = str(entries["__fusedopt_checkpoint__"])
    entries["__fusedopt_checkpoint__"] = np.array(data.draw(damaged_metadata(meta)))
    np.savez(path, **entries)
    ps, o = make(fo.Adam, {"lr": 0.01, "amsgrad": True}, 2, 1)
    before = fingerprint(o, ps)
    sched = Counter()
    try:
        fo.load_checkpoint(path, o, sched)
    except (ValueError, TypeError):
        assert fingerprint(o, ps) == before and sched.state == {"count": 0}
    else:  # the damage happened to keep it valid: then it loaded as a whole
        o.step(grads_for(ps, 1))


@examples(60)
@given(
    path=st.sampled_from([None, 3, b"x.npz", ["a"], "ok"]),
    optimizer=st.sampled_from([None, "opt", 3, "ok"]),
    scheduler=st.sampled_from([None, "s", 3, "counter"]),
)
def test_fuzz_checkpoint_arguments(path, optimizer, scheduler, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("args")
    _, opt = make(fo.SGD, {"lr": 0.1}, 1, 1)
    p = tmp / "c.npz" if path == "ok" else path
    o = opt if optimizer == "ok" else optimizer
    s = Counter() if scheduler == "counter" else scheduler
    try:
        fo.save_checkpoint(p, o, s)
    except (TypeError, ValueError):
        pass
    try:
        fo.load_checkpoint(p, o, s)
    except (TypeError, ValueError, FileNotFoundError):
        pass


# ------------------------------------------------------------- killed mid-save

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import fusedopt as fo

    path, n = sys.argv[1], int(sys.argv[2])
    p = np.zeros(n)
    opt = fo.SGD([p], lr=0.5, momentum=0.9)
    k = 0
    while True:
        k += 1
        p[:] = k
        opt.state_dict()  # keep the optimizer busy between saves too
        print(k, flush=True)
        fo.save_checkpoint(path, opt, version=np.array(k))
    """
)


def check_consistent(path: Path, n: int) -> int:
    """Loads the checkpoint into a fresh optimizer: complete, and all of one version."""
    p = np.full(n, -1.0)
    opt = fo.SGD([p], lr=0.5, momentum=0.9)
    version = int(fo.load_checkpoint(path, opt)["version"])
    assert p[0] == p[-1] == version
    assert np.all(p == version)
    return version


def start_writer(path: Path, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(n)],
        stdout=subprocess.PIPE,
        text=True,
    )


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_writer_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    n = 1 << 21 if not SANITIZED else 1 << 19  # 16 MiB of parameter: a save takes a while
    path = tmp_path / "ckpt.npz"
    p = np.zeros(n)
    opt = fo.SGD([p], lr=0.5, momentum=0.9)
    fo.save_checkpoint(path, opt, version=np.array(0))
    full = path.stat().st_size
    previous = path.read_bytes()
    killed_mid_write = 0
    for _ in range(5):
        proc = start_writer(path, n)
        try:
            assert proc.stdout is not None
            inode = path.stat().st_ino
            assert proc.stdout.readline().strip() == "1"  # the first save has begun
            deadline = time.monotonic() + 30
            partial = False
            while time.monotonic() < deadline and proc.poll() is None:
                sizes = []
                for f in tmp_path.iterdir():
                    if f.name.endswith(".tmp"):
                        try:
                            sizes.append(f.stat().st_size)
                        except FileNotFoundError:  # renamed meanwhile
                            pass
                if any(0 < size < full for size in sizes):
                    partial = True  # caught it writing
                    break
                if path.stat().st_ino != inode:
                    break  # too late: the first save is already complete
        finally:
            kill(proc)
        if partial:
            killed_mid_write += 1
            assert path.read_bytes() == previous  # untouched, byte for byte
            assert check_consistent(path, n) == 0
            for f in tmp_path.iterdir():  # the writer's half-written file, left behind
                if f.name.endswith(".tmp"):
                    f.unlink()
            break
        check_consistent(path, n)
        fo.save_checkpoint(path, opt, version=np.array(0))
        previous = path.read_bytes()
    assert killed_mid_write, "never caught the writer in the middle of a save"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_writers_killed_at_random_moments_always_leave_a_whole_checkpoint(tmp_path):
    n = 1 << 16
    path = tmp_path / "ckpt.npz"
    rng = np.random.default_rng(0)
    versions = []
    for _ in range(4 if not SANITIZED else 2):
        proc = start_writer(path, n)
        try:
            assert proc.stdout is not None
            proc.stdout.readline()
            time.sleep(float(rng.uniform(0.0, 0.3)))
        finally:
            kill(proc)
        if path.exists():
            versions.append(check_consistent(path, n))
    assert versions
