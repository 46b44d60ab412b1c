"""``fusedopt sweep`` and :mod:`fusedopt.demo.sweep`: configurations, runs, results file, Dask.

The oracle of every distributed run is the same configuration trained serially in this
process (``client=None``), itself checked against ``fusedopt.demo.fit`` called by hand:
results must be equal bit for bit. The Dask tests run on an embedded local cluster, and
also on a running scheduler when ``FUSEDOPT_DASK_SCHEDULER`` is set (``.ci/dask_sweep.sh``).
Without Dask they are skipped, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fusedopt
from fusedopt import cli
from fusedopt._optional import MissingDependencyError
from fusedopt.cli import common
from fusedopt.cli import sweep as sweep_cli
from fusedopt.demo import sweep
from fusedopt.demo.data import load_digits
from fusedopt.demo.model import MLP, TrainingDiverged, fit
from fusedopt.demo.sweep import ResultsFileError, RunConfig, SweepSpec, run_sweep
from fusedopt.demo.threads import limit_blas_threads

from .helpers import needs

needs_data = pytest.mark.skipif(
    __import__("importlib").util.find_spec("sklearn") is None, reason='needs "fusedopt[demo]"'
)

EXTERNAL = os.environ.get("FUSEDOPT_DASK_SCHEDULER")

#: A tiny run: 200 training images, a 32-wide hidden layer, 2 epochs (~20 ms).
TINY: dict[str, Any] = {"epochs": 2, "n_train": 200, "hidden": (32,)}
CLI_TINY = ["--epochs", "2", "--n-train", "200", "--hidden", "32"]

#: The fields that must be equal bit for bit between two ways of running a config.
NUMBERS = ("key", "test_accuracy", "train_loss", "test_loss", "diverged", "diverged_at")


def _distributed() -> Any:
    """``distributed``; skip without it, or fail in CI (``CI=true``), which installs it."""
    return needs("distributed", "dask")


def _numbers(record: dict[str, Any]) -> str:
    """The result's numbers as exact text (repr of floats; nan compares equal to nan)."""
    return json.dumps({k: sweep._finite(record[k]) for k in NUMBERS}, sort_keys=True)


def _by_key(records: list[dict[str, Any]]) -> dict[str, str]:
    return {r["key"]: _numbers(r) for r in records}


# --------------------------------------------------------------------------- Dask clusters
@pytest.fixture(scope="module")
def local_client() -> Iterator[Any]:
    """An embedded 2-worker cluster (processes, one thread each), shared by the module."""
    distributed = _distributed()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(2, timeout=60)
        yield client


@pytest.fixture(scope="module")
def external_client() -> Iterator[Any]:
    """A client of the scheduler FUSEDOPT_DASK_SCHEDULER names (skipped when unset)."""
    if not EXTERNAL:
        pytest.skip("FUSEDOPT_DASK_SCHEDULER is not set (see .ci/dask_sweep.sh)")
    distributed = _distributed()
    with distributed.Client(EXTERNAL, timeout=30) as client:
        client.wait_for_workers(1, timeout=60)
        yield client


@pytest.fixture(params=["local", "external"])
def client(request: pytest.FixtureRequest) -> Any:
    """Each Dask cluster: the local one, and the external one when there is one."""
    return request.getfixturevalue(f"{request.param}_client")


# --------------------------------------------------------------------------- configurations
def test_log_uniform_is_seeded_within_bounds_and_uniform_in_log() -> None:
    lrs = sweep.log_uniform(1e-5, 1e-1, 4000, seed=3)
    assert len(lrs) == 4000 and lrs == sorted(lrs, reverse=True)
    assert all(1e-5 <= v <= 1e-1 for v in lrs)
    assert lrs == sweep.log_uniform(1e-5, 1e-1, 4000, seed=3)  # reproducible
    assert lrs != sweep.log_uniform(1e-5, 1e-1, 4000, seed=4)
    # uniform in log10: each of the 4 decades holds a quarter (binomial sd ~0.7 %)
    decades = np.histogram(np.log10(lrs), bins=[-5, -4, -3, -2, -1])[0] / len(lrs)
    np.testing.assert_allclose(decades, 0.25, atol=0.03)
    # ... and not uniform in the rates themselves: the top decade would hold ~90 %
    assert np.mean(np.asarray(lrs) > 1e-2) < 0.3
    assert sweep.log_uniform(0.5, 0.6, 1, seed=0)[0] == pytest.approx(
        math.exp(np.random.default_rng(0).uniform(math.log(0.5), math.log(0.6)))
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [((1e-3, 1e-3, 3), "must exceed"), ((0.0, 1.0, 3), "positive"), ((1e-3, 1.0, 0), ">= 1"),
     ((1e-3, math.inf, 2), "positive"), ((1e-3, 1.0, 2.5), ">= 1")],
)  # fmt: skip
def test_log_uniform_rejects_a_bad_range(args: tuple[float, float, float], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        sweep.log_uniform(*args)  # type: ignore[arg-type]


def test_grid_is_every_combination_optimizer_major_with_distinct_keys() -> None:
    spec = SweepSpec.grid(
        ["Adam", "SGD"],
        [np.float64(0.1), 0.01, 1e-3],
        schedules=["constant", "cosine"],
        options={"SGD": {"momentum": 0.9}},
        **TINY,
    )
    configs = spec.configs()
    assert len(configs) == 2 * 3 * 2
    assert [(c.optimizer, c.schedule, c.lr) for c in configs[:4]] == [
        ("Adam", "constant", 0.1), ("Adam", "constant", 0.01), ("Adam", "constant", 1e-3),
        ("Adam", "cosine", 0.1),
    ]  # fmt: skip
    assert len({c.key for c in configs}) == len(configs)
    assert type(configs[0].lr) is float  # np.float64 normalized: the same key as 0.1
    assert configs[0].key == (
        "Adam lr=0.1 schedule=constant epochs=2 batch_size=32 hidden=32 seed=0 n_train=200 "
        "backend=fused"
    )
    assert configs[-1].key.endswith("opt.momentum=0.9") and configs[-1].options == (
        ("momentum", 0.9),
    )
    assert RunConfig("Adam", 0.1, **TINY) == RunConfig("Adam", np.float64(0.1), **TINY)
    random = SweepSpec.random(["Adam"], 1e-4, 1.0, 5, seed=7, **TINY)
    assert list(random.lrs) == sweep.log_uniform(1e-4, 1.0, 5, seed=7)
    with pytest.raises(ValueError, match="lr must be a positive"):
        RunConfig("Adam", -1.0)
    with pytest.raises(ValueError, match="epochs and batch_size"):
        RunConfig("Adam", 0.1, epochs=0)


# --------------------------------------------------------------------------- one run
@needs_data
def test_run_one_is_fit_by_hand_and_reports_divergence() -> None:
    cfg = RunConfig("SGD", 0.05, schedule="cosine", options={"momentum": 0.9}, **TINY)
    rec = sweep.run_one(cfg, curves=True)
    # the oracle with BLAS on one thread as in run_one: its products' bits depend on the count
    stack = contextlib.ExitStack()
    stack.enter_context(limit_blas_threads(1))
    data = load_digits(seed=0, n_train=200)
    model = MLP((64, 32, 10), seed=0)
    opt = fusedopt.SGD(model.params, lr=0.05, momentum=0.9)
    steps = 2 * math.ceil(200 / 32)
    sched = fusedopt.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    h = fit(model, opt, data.X_train, data.y_train, epochs=2, scheduler=sched,
            X_test=data.X_test, y_test=data.y_test, seed=0)  # fmt: skip
    assert rec["test_accuracy"] == h.test_accuracy[-1] and rec["train_loss"] == h.epoch_losses[-1]
    assert rec["test_loss"] == h.test_loss[-1] and not rec["diverged"]
    assert rec["history"]["step_losses"] == h.step_losses and rec["history"]["lrs"] == h.lrs
    assert rec["worker"] == f"pid {os.getpid()}" and rec["seconds"] > 0
    assert rec["config"]["options"] == {"momentum": 0.9} and "history" not in sweep.run_one(cfg)
    # a diverging rate: the epoch and loss of the divergence, as fit raises them
    bad = sweep.run_one(RunConfig("Adam", 10.0, **TINY))
    model = MLP((64, 32, 10), seed=0)
    with pytest.raises(TrainingDiverged) as info:
        fit(model, fusedopt.Adam(model.params, lr=10.0), data.X_train, data.y_train,
            epochs=2, X_test=data.X_test, y_test=data.y_test, seed=0)  # fmt: skip
    assert bad["diverged"] and bad["test_accuracy"] is None and bad["train_loss"] is None
    stack.close()
    at = bad["diverged_at"]
    assert (at["epoch"], at["step"], at["loss"]) == (
        info.value.epoch,
        info.value.step,
        info.value.loss,
    )


@needs_data
def test_run_one_restores_the_thread_counts() -> None:
    before = fusedopt.get_num_threads()
    fusedopt.set_num_threads(2)
    try:
        seen = []
        real = sweep.fit

        def spy(*args: Any, **kwargs: Any) -> Any:
            seen.append(fusedopt.get_num_threads())
            return real(*args, **kwargs)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sweep, "fit", spy)
            sweep.run_one(RunConfig("Adam", 1e-2, **TINY))
            sweep.run_one(RunConfig("Adam", 1e-2, **TINY), threads=None)
        assert seen == [1, 2] and fusedopt.get_num_threads() == 2
    finally:
        fusedopt.set_num_threads(before)


# --------------------------------------------------------------------------- the results file
def _tiny_grid() -> list[RunConfig]:
    return SweepSpec(["Adam", "SGD"], [10.0, 0.1, 0.01], **TINY).configs()


@needs_data
def test_results_file_has_a_line_per_run_with_its_numbers(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    configs = _tiny_grid()
    res = run_sweep(configs, path)
    assert (res.ran, res.skipped, res.path) == (6, 0, path)
    lines = path.read_text().splitlines()
    assert len(lines) == 6
    records = [json.loads(line) for line in lines]
    assert [r["key"] for r in records] == [c.key for c in configs]  # serial: in order
    for rec, cfg in zip(records, configs, strict=True):
        assert set(rec) == {"key", "config", "test_accuracy", "train_loss", "test_loss",
                            "diverged", "diverged_at", "seconds", "worker"}  # fmt: skip
        assert rec["config"]["lr"] == cfg.lr and rec["config"]["optimizer"] == cfg.optimizer
        assert _numbers(rec) == _numbers(sweep.run_one(cfg))  # what a fresh run gives
    assert [r["diverged"] for r in records] == [True, False, False, True, False, False]
    # non-finite numbers are written as strings: strict JSON
    assert json.loads(json.dumps(sweep._finite({"a": [math.inf, math.nan, 1.5]}))) == {
        "a": ["inf", "nan", 1.5]
    }


@needs_data
def test_rerun_skips_done_runs_and_reruns_a_torn_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.jsonl"
    configs = _tiny_grid()
    first = run_sweep(configs[:4], path)
    assert first.ran == 4
    text = path.read_text()
    # the writer was killed mid-line: the 4th record is cut short
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 1 + 25])
    trained: list[str] = []
    real = sweep.run_one

    def counting(cfg: RunConfig, **kw: Any) -> dict[str, Any]:
        trained.append(cfg.key)
        return real(cfg, **kw)

    monkeypatch.setattr(sweep, "run_one", counting)
    second = run_sweep([*configs, configs[0]], path)  # a config given twice runs once
    assert trained == [c.key for c in configs[3:]]
    assert (second.ran, second.skipped) == (3, 3)
    assert [r["key"] for r in second.results] == [c.key for c in configs]
    assert _by_key(second.results[:4]) == _by_key(first.results)
    records = sweep.read_results(path)
    assert [r["key"] for r in records] == [c.key for c in configs]  # the torn line is gone
    # everything done: nothing runs, the file is unchanged
    trained.clear()
    before = path.read_bytes()
    third = run_sweep(configs, path)
    assert trained == [] and (third.ran, third.skipped) == (0, 6) and path.read_bytes() == before
    # a complete last record whose newline was lost is kept, and the next goes on a new line
    path.write_bytes(before[:-1])
    assert len(sweep.read_results(path, repair=True)) == 6 and path.read_bytes() == before


def test_a_corrupt_line_before_the_last_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ResultsFileError, match="line 2 is not a sweep result"):
        sweep.read_results(path)
    path.write_text('{"key": "a"}\n[1, 2]\n')  # the last line, but complete and wrong: torn
    assert sweep.read_results(path) == [{"key": "a"}]
    assert sweep.read_results(tmp_path / "missing.jsonl") == []


# --------------------------------------------------------------------------- Dask
@needs_data
def test_dask_results_equal_the_serial_ones_bit_for_bit(client: Any, tmp_path: Path) -> None:
    configs = SweepSpec(["Adam", "SGD", "Adagrad"], [10.0, 0.3, 0.03, 0.003],
                        schedules=["constant", "cosine"], **TINY).configs()  # fmt: skip
    serial = run_sweep(configs, tmp_path / "serial.jsonl")
    path = tmp_path / "dask.jsonl"
    seen: list[int] = []
    dask = run_sweep(configs, path, client, on_result=lambda rec, k, n: seen.append(k))
    assert seen == list(range(1, 25)) and dask.ran == 24
    assert _by_key(dask.results) == _by_key(serial.results)
    assert any(r["diverged"] for r in dask.results) and any(not r["diverged"] for r in dask.results)
    workers = set(client.nthreads())
    assert {r["worker"] for r in dask.results} <= workers  # each ran on a Dask worker
    on_file = sweep.read_results(path)
    assert sorted(r["key"] for r in on_file) == sorted(c.key for c in configs)
    assert _by_key(on_file) == _by_key(serial.results)


@needs_data
def test_a_worker_killed_mid_sweep_loses_no_run(client: Any, tmp_path: Path) -> None:
    if client.scheduler.address.split("://")[-1].split(":")[0] not in ("127.0.0.1", "localhost"):
        pytest.skip("the workers are not on this machine")
    # runs long enough (~0.1-0.3 s) to be killed while running
    configs = SweepSpec(["Adam", "SGD"], [0.1, 0.03, 0.01, 0.003, 0.001, 3e-4],
                        epochs=3, hidden=(128,)).configs()  # fmt: skip
    serial = run_sweep(configs, None)
    pids: dict[str, int] = client.run(os.getpid)
    killed: dict[str, int] = {}

    def kill_a_busy_worker() -> None:
        """As soon as a worker has runs assigned (right after the submission), kill it."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            processing = client.processing()
            busy = [a for a in pids if processing.get(a)]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed[busy[0]] = len(processing[busy[0]])
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    path = tmp_path / "r.jsonl"
    res = run_sweep(configs, path, client)
    killer.join(timeout=60)
    assert killed, "no worker ever had a run assigned"
    assert res.ran == len(configs)
    assert _by_key(res.results) == _by_key(serial.results)  # every run, the same numbers
    on_file = sweep.read_results(path)
    assert sorted(r["key"] for r in on_file) == sorted(c.key for c in configs)  # once each
    # the worker really died (its nanny starts a new one, at a new address)
    client.wait_for_workers(len(pids), timeout=60)
    assert pids[next(iter(killed))] not in client.run(os.getpid).values()


# --------------------------------------------------------------------------- the command
def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["sweep", *args])
    out, err = capsys.readouterr()
    return code, out, err


@needs_data
def test_cli_serial_sweep_prints_runs_and_the_best_per_optimizer_then_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.jsonl"
    args = ["--optimizers", "adam,sgd", "--lrs", "10,0.1,0.01", *CLI_TINY,
            "--results", str(path), "--serial", "--no-progress"]  # fmt: skip
    code, out, _ = _cli(args, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "sweep (grid): 2 optimizers x 3 learning rates x 1 schedule = 6 runs of 2 epochs"
    )
    assert lines[1] == "running 6 runs serially in this process"
    progress = [line for line in lines if line.startswith("[")]
    assert [p.split("]")[0] for p in progress] == [f"[{k}/6" for k in range(1, 7)]
    assert re.match(r"\[1/6\] Adam lr=10 constant: diverged \(epoch 1, loss=", progress[0])
    # the numbers: those of the runs, with the command line's SGD default (momentum 0.9)
    records = {r["key"]: r for r in sweep.read_results(path)}
    assert len(records) == 6
    sgd = [r for r in records.values() if r["config"]["optimizer"] == "SGD"]
    assert all(r["config"]["options"] == {"momentum": 0.9} for r in sgd)
    best = {
        name: max((r for r in records.values() if r["config"]["optimizer"] == name
                   and not r["diverged"]), key=lambda r: r["test_accuracy"])
        for name in ("Adam", "SGD")
    }  # fmt: skip
    head = lines.index("best run per optimizer, by final test accuracy:")
    table = [line.split() for line in lines[head + 2 : head + 4]]
    order = sorted(best, key=lambda n: -best[n]["test_accuracy"])
    assert [row[0] for row in table] == order
    for row in table:
        r = best[row[0]]
        assert row[1:] == [f"{r['config']['lr']:.3g}", "constant", f"{r['test_accuracy']:.2%}",
                           f"{r['train_loss']:.4f}", "1/3"]  # fmt: skip
    assert lines[-1] == f"6 runs: 6 ran, 0 skipped (already done); results in {path}"
    # a rerun skips everything and says so
    code, out2, _ = _cli(args, capsys)
    assert code == 0
    assert f"skipping 6 of 6 runs already in {path}" in out2
    assert not [line for line in out2.splitlines() if line.startswith("[")]
    assert out2.splitlines()[-1] == f"6 runs: 0 ran, 6 skipped (already done); results in {path}"
    assert out2.split("best run")[1] == out.split("best run")[1].replace("6 ran, 0", "0 ran, 6")


@needs_data
def test_cli_random_search_draws_seeded_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.jsonl"
    args = ["--optimizers", "Adam", "--lr-range", "1e-3,1e-1", "--samples", "3", "--seed", "5",
            "--schedules", "cosine,constant", *CLI_TINY, "--results", str(path), "--serial",
            "--no-progress"]  # fmt: skip
    code, out, _ = _cli(args, capsys)
    assert code == 0 and out.startswith("sweep (random search): 1 optimizer x 3 learning rates")
    recs = sweep.read_results(path)
    assert sorted({r["config"]["lr"] for r in recs}) == sorted(
        sweep.log_uniform(1e-3, 1e-1, 3, seed=5)
    )
    assert sorted({r["config"]["schedule"] for r in recs}) == ["constant", "cosine"]
    assert {r["config"]["seed"] for r in recs} == {5} and len(recs) == 6


@needs_data
def test_cli_on_dask_writes_the_serial_numbers(
    client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--optimizers", "Adam,SGD", "--lrs", "1,0.1,0.01", "--schedules", "constant,cosine",
            *CLI_TINY, "--no-progress"]  # fmt: skip
    code, _, _ = _cli([*base, "--results", str(tmp_path / "s.jsonl"), "--serial"], capsys)
    assert code == 0
    address = client.scheduler.address
    code, out, _ = _cli([*base, "--results", str(tmp_path / "d.jsonl"), "--scheduler", address],
                        capsys)  # fmt: skip
    assert code == 0
    assert re.search(rf"^running 12 runs on \d+ Dask workers? \(scheduler {address}\)$", out, re.M)
    assert len([line for line in out.splitlines() if line.startswith("[")]) == 12
    serial = sweep.read_results(tmp_path / "s.jsonl")
    assert _by_key(sweep.read_results(tmp_path / "d.jsonl")) == _by_key(serial)
    # the rerun skips every run: it does not even connect
    code, out, _ = _cli([*base, "--results", str(tmp_path / "d.jsonl"), "--scheduler",
                         "tcp://127.0.0.1:9"], capsys)  # fmt: skip
    assert code == 0 and "skipping 12 of 12 runs" in out and "0 ran, 12 skipped" in out


@needs_data
def test_cli_default_is_an_embedded_local_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _distributed()
    path = tmp_path / "l.jsonl"
    args = ["--optimizers", "Adam", "--lrs", "0.1,0.01", *CLI_TINY, "--no-progress"]
    code, out, _ = _cli([*args, "--results", str(path), "--workers", "1"], capsys)
    assert code == 0 and re.search(r"^running 2 runs on 1 Dask worker \(scheduler ", out, re.M)
    serial = run_sweep(sweep_cli.make_spec(cli.build_parser().parse_args(
        ["sweep", *args, "--serial"])).configs())  # fmt: skip
    assert _by_key(sweep.read_results(path)) == _by_key(serial.results)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--optimizers", "Adam,Bogus"], "--optimizers: unknown optimizer 'Bogus'"),
        (["--schedules", "cosine,bogus"], "--schedules: unknown schedule 'bogus'"),
        (["--schedules", "cosine,Cosine"], "--schedules: a schedule is given twice"),
        (["--lrs", "0.1,x"], "--lrs: expected comma-separated numbers, got 'x'"),
        (["--lrs", "0.1,-1"], "--lrs: a learning rate must be a positive number, got -1"),
        (["--lrs", "0.1,0.1"], "--lrs: a learning rate is given twice"),
        (["--lr-range", "1,0.1"], "--lr-range: HIGH (0.1) must be greater than LOW (1)"),
        (["--lr-range", "0.1"], "--lr-range: expected LOW,HIGH, got '0.1'"),
        (["--lr-range", "0,1"], "--lr-range: a learning rate must be a positive number"),
        (["--lr-range", "1e-3,1", "--samples", "0"], "--samples must be at least 1, got 0"),
        (["--samples", "3"], "--samples needs --lr-range LOW,HIGH"),
        (["--lrs", "0.1", "--lr-range", "1e-3,1"], "give --lrs or --lr-range, not both"),
        (["--serial", "--workers", "2"], "--workers sizes the local Dask cluster"),
        (["--serial", "--scheduler", "tcp://x:1"], "not allowed with argument"),
        (["--optimizers", "SGD,Adam", "--opt-arg", "momentum=0.5"], "cannot build Adam"),
        (["--opt-arg", "lr=1"], "--opt-arg lr=...: give the rates with --lrs"),
        (["--schedules", "LambdaLR"], "lr_lambda"),
        (["--results", "{tmp}/nope/r.jsonl"], "does not exist"),
        (["--epochs", "0"], "--epochs: expected a positive integer"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_run(
    extra: list[str], needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(sweep_cli, "run_sweep", _no_run)
    monkeypatch.setattr(sweep_cli, "dask_client", _no_run)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(["sweep", *[e.format(tmp=tmp_path) for e in extra]])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and err[0].startswith("fusedopt sweep"), err


def _no_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("ran before checking the arguments")


@needs_data
def test_an_unreachable_scheduler_is_one_line_within_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _distributed()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(sweep_cli, "CONNECT_TIMEOUT", 1.0)
    start = time.monotonic()
    code, _, err = _cli(["--lrs", "0.1", *CLI_TINY, "--results", str(tmp_path / "r.jsonl"),
                           "--scheduler", f"tcp://127.0.0.1:{port}"], capsys)  # fmt: skip
    assert code == 1 and time.monotonic() - start < 20
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        f"fusedopt sweep: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port} "
        "within 1 s"
    )
    assert not (tmp_path / "r.jsonl").exists()


@needs_data
def test_a_file_that_is_not_a_sweep_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    code, _, err = _cli(["--lrs", "0.1", *CLI_TINY, "--results", str(path), "--serial"], capsys)
    assert (
        code == 1
        and "line 1 is not a sweep result" in err
        and path.read_text() == ("hello\nworld\n")
    )


@needs_data
def test_without_dask_serial_works_and_dask_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(MissingDependencyError, match=r'pip install "fusedopt\[dask\]"'):
        with sweep.dask_client():
            pass
    args = ["--optimizers", "Adam", "--lrs", "0.1", *CLI_TINY, "--no-progress"]
    code, _, err = _cli([*args, "--results", str(tmp_path / "a.jsonl")], capsys)
    assert code == 1 and err.strip() == (
        "fusedopt sweep: error: a sweep on Dask needs distributed, which is not installed: "
        'pip install "fusedopt[dask]"'
    )
    code, out, _ = _cli([*args, "--results", str(tmp_path / "b.jsonl"), "--serial"], capsys)
    assert code == 0 and "running 1 run serially" in out and "1 run: 1 ran" in out


# --------------------------------------------------------------------------- compare-lr
def _table(out: str) -> tuple[list[str], set[str]]:
    """compare-lr's output without the Dask line; the progress lines apart, without their
    count (Dask's finish in any order)."""
    lines = [line for line in out.splitlines() if not line.startswith("training ")]
    progress = {ln.split("] ", 1)[1] for ln in lines if ln[:1] == "["}
    return [ln for ln in lines if not ln.startswith("[")], progress


@needs_data
def test_compare_lr_on_dask_prints_what_it_prints_serially(
    client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    quick = ["compare-lr", "--no-progress", "--no-plot", *CLI_TINY]
    for extra in (["--optimizers", "Adam,SGD", "--lrs", "10", "0.1", "0.01"],
                  ["--optimizer", "SGD", "--lrs", "10", "0.1", "0.01"]):  # fmt: skip
        assert cli.main([*quick, *extra]) == 0
        serial = capsys.readouterr().out
        assert cli.main([*quick, *extra, "--scheduler", client.scheduler.address]) == 0
        dask = capsys.readouterr().out
        assert "training 6 runs on " in dask or "training 3 runs on " in dask
        assert _table(dask) == _table(serial)
        assert "diverged" in serial and "%" in serial


def test_compare_lr_takes_scheduler_or_workers_not_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["compare-lr", "--workers", "2", "--scheduler", "tcp://x:1"])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_cli_defaults_match_the_other_commands() -> None:
    ns = cli.build_parser().parse_args(["sweep"])
    spec = sweep_cli.make_spec(ns)
    assert list(spec.lrs) == list(sweep_cli.DEFAULT_LRS) and list(spec.optimizers) == [
        "Adam",
        "SGD",
    ]
    sgd = dict(common.OPTIMIZER_DEFAULTS["SGD"])
    del sgd["lr"]  # the rates are the sweep's
    assert spec.options["SGD"] == sgd == {"momentum": 0.9}
    assert ns.results == "sweep_results.jsonl" and ns.workers is None and not ns.serial
