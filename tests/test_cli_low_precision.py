"""``fusedopt train --dtype / --state-dtype / --stochastic-rounding`` (issue 18) and the demo
MLP with half-precision parameters.

Oracles: the float32 MLP on the same (upcast) weights (the half model computes in float32,
so its loss is the same number and its grads the float32 grads rounded once), the optimizer
the command builds (its dtypes and state arrays), the float32 run of the same command (the
accuracy a low-precision run must stay near), and one-line errors for bad combinations.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from fusedopt import cli
from fusedopt._optional import MissingDependencyError
from fusedopt.cli import common
from fusedopt.demo.model import MLP
from tests.helpers import needs
from tests.test_cli import _blocker, assert_one_line_error, run_cli

#: a small, quick run: 5 epochs of the whole training set through a 64-wide MLP
SMALL = ["train", "--epochs", "5", "--hidden", "64", "--no-progress"]


@pytest.fixture
def ml_dtypes() -> ModuleType:
    """ml_dtypes (bfloat16), or the test is skipped (fails in CI, which installs [half])."""
    return needs("ml_dtypes", "half")


@pytest.fixture
def digits() -> ModuleType:
    """scikit-learn (the digits), or the test is skipped."""
    return needs("sklearn", "demo")


def _parse(*args: str) -> Any:
    return cli.build_parser().parse_args(["train", *args])


def _train(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(argv) == 0
    return capsys.readouterr().out


def _accuracy(out: str) -> float:
    match = re.search(r"^test accuracy: ([\d.]+)%", out, re.M)
    assert match, out
    return float(match.group(1))


def _state_bytes(out: str) -> float:
    match = re.search(r"^optimizer state: ([\d.]+) bytes per parameter", out, re.M)
    assert match, out
    return float(match.group(1))


def _final_loss(out: str) -> str:
    match = re.search(r"final train loss (\S+),", out)
    assert match, out
    return match.group(1)


# ------------------------------------------------------------------ parsing
def test_the_defaults_leave_the_optimizer_as_before() -> None:
    args = _parse()
    assert (args.dtype, args.state_dtype, args.stochastic_rounding) == ("float32", None, False)
    assert common.precision_kwargs(args) == {}
    common.check_precision(args)  # no error


def test_the_options_become_optimizer_arguments() -> None:
    args = _parse("--dtype", "float16", "--state-dtype", "int8", "--stochastic-rounding")
    args.seed = 7
    assert common.precision_kwargs(args) == {
        "state_dtype": "int8",
        "stochastic_rounding": True,
        "seed": 7,
    }
    args = _parse("--dtype", "float16", "--state-dtype", "param")
    assert common.precision_kwargs(args) == {"state_dtype": np.dtype(np.float16)}
    args = _parse("--dtype", "float64", "--state-dtype", "param")
    assert common.precision_kwargs(args) == {"state_dtype": np.dtype(np.float64)}


def test_commands_without_the_options_keep_float32() -> None:
    """lr-find and compare-lr share data_and_model / make_optimizer but not the options."""
    args = cli.build_parser().parse_args(["lr-find"])
    assert not hasattr(args, "dtype")
    assert common.precision_kwargs(args) == {}
    common.check_precision(args)


# ------------------------------------------------------------------ the MLP
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_mlp_computes_in_float32_and_returns_grads_of_its_dtype(half: str) -> None:
    if half == "bfloat16":
        needs("ml_dtypes", "half")
    model = MLP((8, 16, 3), dtype=half, seed=1)
    dtype = common.dtype_of(half)
    assert model.dtype == dtype and model.compute_dtype == np.float32
    assert all(p.dtype == dtype for p in model.params)
    # the float32 model on the same (exactly representable) weights
    ref = MLP((8, 16, 3), dtype=np.float32, seed=1)
    ref.params[:] = [p.astype(np.float32) for p in model.params]
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 8)), rng.integers(0, 3, 20)
    loss, grads = model.loss_and_grads(X, y)
    ref_loss, ref_grads = ref.loss_and_grads(X, y)
    assert loss == ref_loss
    for g, r in zip(grads, ref_grads, strict=True):
        assert g.dtype == dtype and g.shape == r.shape
        np.testing.assert_array_equal(g, r.astype(dtype))
    np.testing.assert_array_equal(model.forward(X), ref.forward(X))
    assert model.forward(X).dtype == np.float32


def test_bfloat16_without_ml_dtypes_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes -> ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "fusedopt\[half\]"'):
        MLP((4, 2), dtype="bfloat16")


def test_mlp_rejects_a_dtype_that_is_not_floating() -> None:
    with pytest.raises(ValueError, match="floating dtype"):
        MLP((4, 2), dtype=np.int8)


# ------------------------------------------------------------------ small real runs
def test_bfloat16_stochastic_rounding_trains_like_float32(
    ml_dtypes: ModuleType, digits: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _train(SMALL, capsys)
    out = _train([*SMALL, "--dtype", "bfloat16", "--stochastic-rounding", "--seed", "0"], capsys)
    assert (
        "precision: bfloat16 parameters (forward and backward in float32, grads cast to "
        "bfloat16), float32 state (default), stochastic rounding of the parameter writes "
        "(seed 0)"
    ) in out
    assert _accuracy(out) > 90.0
    assert abs(_accuracy(out) - _accuracy(base)) <= 2.0
    assert _state_bytes(out) == pytest.approx(8.0, abs=0.01)  # two float32 moments
    # the same seed gives the same run, bit for bit
    again = _train([*SMALL, "--dtype", "bfloat16", "--stochastic-rounding", "--seed", "0"], capsys)
    assert _final_loss(again) == _final_loss(out) and _accuracy(again) == _accuracy(out)


def test_bfloat16_round_to_nearest_says_so(
    ml_dtypes: ModuleType, digits: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _train([*SMALL, "--dtype", "bfloat16", "--state-dtype", "param"], capsys)
    assert "bfloat16 state, parameter writes rounded to nearest" in out
    assert _state_bytes(out) == pytest.approx(4.0, abs=0.01)  # two bfloat16 moments
    assert _accuracy(out) > 85.0


def test_int8_state_trains_like_float32(
    digits: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []
    make = common.make_optimizer

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append(make(*args, **kwargs))
        return built[-1]

    base = _train(SMALL, capsys)
    monkeypatch.setattr("fusedopt.cli.train.make_optimizer", spy)
    out = _train([*SMALL, "--state-dtype", "int8"], capsys)
    assert "precision: float32 parameters, int8 state (blockwise, 64 elements" in out
    assert abs(_accuracy(out) - _accuracy(base)) <= 2.0
    # two int8 codes per element, a float32 scale per 64 of them: about 2.1 bytes, not 8
    assert _state_bytes(base) == pytest.approx(8.0, abs=0.01)
    assert 2.0 < _state_bytes(out) < 2.5
    (opt,) = built
    assert opt.state_dtype == "int8"
    st = opt.state[0]
    assert st["exp_avg"].dtype == np.int8 and st["exp_avg_sq"].dtype == np.int8
    assert st["exp_avg_absmax"].dtype == np.float32
    assert st["exp_avg_absmax"].size == -(-opt._params[0].size // 64)


def test_bfloat16_with_int8_state(
    ml_dtypes: ModuleType, digits: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*SMALL, "--dtype", "bfloat16", "--stochastic-rounding", "--state-dtype", "int8"]
    out = _train(args, capsys)
    assert "bfloat16 parameters" in out and "int8 state" in out and "stochastic" in out
    assert _accuracy(out) > 90.0
    assert _state_bytes(out) < 2.5


def test_float16_parameters_train(digits: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    out = _train([*SMALL, "--dtype", "float16", "--stochastic-rounding"], capsys)
    assert "precision: float16 parameters" in out
    assert _accuracy(out) > 90.0


# ------------------------------------------------------------------ bad combinations
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--stochastic-rounding"], "--stochastic-rounding rounds float16 / bfloat16"),
        (["--dtype", "float64", "--stochastic-rounding"], "with --dtype float64"),
        (["--dtype", "float64", "--state-dtype", "float32"], "--state-dtype float32 is for"),
        (["--optimizer", "Adagrad", "--state-dtype", "int8"], "Adagrad has no int8 state"),
        (["--optimizer", "{no_half}", "--dtype", "float16"], "{no_half} takes float32 and"),
        (
            ["--optimizer", "{no_half_state}", "--dtype", "float16", "--state-dtype", "param"],
            "{no_half_state} keeps the state of float16 parameters in float32",
        ),
        (["--dtype", "float16", "--stochastic-rounding", "--seed", "-1"], "--seed in [0, 2**64)"),
        (["--dtype", "float16", "--distributed"], "--distributed with --dtype float16"),
        (["--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
        (["--state-dtype", "float16"], "argument --state-dtype: invalid choice"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_bad_combinations_are_one_line_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # an optimizer without half-precision parameters / state, whichever the package has
    classes = common.available_optimizers().items()
    names = {
        "no_half": next((n for n, c in classes if not c.half_params), None),
        "no_half_state": next((n for n, c in classes if c.half_params and not c.half_state), None),
    }
    for key, name in names.items():
        if "{" + key + "}" in needle:
            if name is None:
                pytest.skip(f"every optimizer offers what {key} stands for")
            args = [name if a == "{" + key + "}" else a for a in args]
            needle = needle.replace("{" + key + "}", name)
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--epochs", "1", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and err[0].startswith("fusedopt train: error:")


def test_errors_in_a_subprocess_have_no_traceback(tmp_path: Path, digits: ModuleType) -> None:
    proc = run_cli("train", "--dtype", "float32", "--stochastic-rounding", cwd=tmp_path)
    assert_one_line_error(proc, 2, "--stochastic-rounding")
    # without ml_dtypes, --dtype bfloat16 names the extra (exit 1, one line)
    blocked = _blocker(tmp_path, "ml_dtypes")
    proc = run_cli("train", "--dtype", "bfloat16", "--epochs", "1", cwd=tmp_path, env_path=blocked)
    assert_one_line_error(proc, 1, "ml_dtypes", 'pip install "fusedopt[half]"')
