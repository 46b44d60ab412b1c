"""The bandwidth kernels of ``fusedopt._core`` and the benchmark engine ``fusedopt.bench``,
on tiny sizes (the benchmarks themselves live in ``benchmarks/``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

import fusedopt
from fusedopt import _core, bench, cli
from fusedopt.cli import bench as cli_bench

DTYPES = [np.float32, np.float64]
# sizes around the vector widths (16 float32 / 8 float64 per AVX-512 vector) and kGrain (64)
SIZES = [0, 1, 3, 7, 8, 15, 16, 17, 63, 64, 65, 1000, 4099]


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("n_inplace,n_readonly", [(1, 0), (1, 1), (3, 1), (4, 1), (6, 4), (2, 3)])
def test_traffic_values(rng, dtype, n, n_inplace, n_readonly) -> None:
    inplace = [rng.standard_normal(n).astype(dtype) for _ in range(n_inplace)]
    readonly = [rng.standard_normal(n).astype(dtype) for _ in range(n_readonly)]
    kept = [r.copy() for r in readonly]
    x = np.zeros(n, dtype)
    for r in readonly:
        x = x + r
    expected = [a * dtype(0.25) + x for a in inplace]
    _core.traffic(inplace, readonly, 0.25)
    for got, want in zip(inplace, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    for r, k in zip(readonly, kept, strict=True):
        np.testing.assert_array_equal(r, k)  # read-only arrays are not written


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", SIZES)
def test_triad_values(rng, dtype, n) -> None:
    a = np.full(n, np.nan, dtype)
    b, c = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    _core.triad(a, b, c, 3.0)
    np.testing.assert_array_equal(a, b + dtype(3.0) * c)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_traffic_parallel_split_and_work_list(rng, dtype, threads) -> None:
    """Large enough to be split over the threads; a work list of odd sizes; repeat."""
    sizes = [1, 70000, 63, 129, 100001]
    inplace = [[rng.standard_normal(n).astype(dtype) for n in sizes] for _ in range(2)]
    readonly = [[rng.standard_normal(n).astype(dtype) for n in sizes]]
    expected = [[a.copy() for a in role] for role in inplace]
    for _ in range(3):
        expected = [
            [a * dtype(0.5) + g for a, g in zip(role, readonly[0], strict=True)]
            for role in expected
        ]
    _core.traffic(inplace, readonly, 0.5, repeat=3)
    for role, want in zip(inplace, expected, strict=True):
        for got, w in zip(role, want, strict=True):
            np.testing.assert_array_equal(got, w)
    big = [rng.standard_normal(1 << 17).astype(dtype) for _ in range(3)]
    a = np.empty_like(big[0])
    _core.triad([a], [big[1]], [big[2]], 2.0, repeat=2)
    np.testing.assert_array_equal(a, big[1] + dtype(2.0) * big[2])


def test_traffic_errors() -> None:
    f = np.ones(4)
    with pytest.raises(ValueError, match="inplace must hold 1 to 6"):
        _core.traffic([], [])
    with pytest.raises(ValueError, match="readonly must hold at most 4"):
        _core.traffic([f], [np.ones(4)] * 5)
    with pytest.raises(TypeError, match=r"inplace\[0\] has dtype int64"):
        _core.traffic([np.ones(4, np.int64)])
    with pytest.raises(TypeError, match=r"readonly\[0\] has dtype float32, inplace\[0\] float64"):
        _core.traffic([f], [np.ones(4, np.float32)])
    with pytest.raises(ValueError, match=r"readonly\[0\] has 5 elements"):
        _core.traffic([f], [np.ones(5)])
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.traffic([np.ones(8)[::2]])
    ro = np.ones(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.traffic([ro])
    _core.traffic([f], [ro])  # a read-only array may be read
    with pytest.raises(ValueError, match="shares memory"):
        _core.traffic([f], [f])
    with pytest.raises(ValueError, match="shares memory"):
        _core.traffic([f[:3], f[1:]])
    with pytest.raises(ValueError, match=r"inplace\[1\] has 1 arrays"):
        _core.traffic([[f, np.ones(2)], [np.ones(4)]])
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        _core.traffic([[1.0, 2.0]])
    with pytest.raises(ValueError, match="repeat"):
        _core.triad(f, np.ones(4), np.ones(4), repeat=0)


# --------------------------------------------------------------------------- engine
def test_patterns_derived_from_state() -> None:
    got = {v.id: str(bench.traffic_pattern(v)) for v in bench.variants()}
    assert got["sgd"] == "2R1W"
    assert got["sgd-momentum"] == "3R2W"
    assert got["adam"] == "4R3W"
    assert got["adam-amsgrad"] == "5R4W"
    assert got["adamw"] == "4R3W"
    assert got["asgd"] == got["asgd-averaging"] == "3R2W"  # ax (eta, mu are scalars)
    assert got["rprop"] == "4R3W"  # prev, step_size
    # z (and exp_avg_sq); the variants are made in train mode, where they step
    assert got["sgdschedulefree"] == "3R2W"
    assert got["adamwschedulefree"] == "4R3W"
    assert set(got) >= {"sgd", "adam", "adamw"}


def test_variants_discovered_and_selected() -> None:
    every = bench.variants()
    classes = {v.cls for v in every}
    exported = {
        getattr(fusedopt, n)
        for n in fusedopt.__all__
        if isinstance(getattr(fusedopt, n), type)
        and issubclass(getattr(fusedopt, n), fusedopt.Optimizer)
        and getattr(fusedopt, n) is not fusedopt.Optimizer
        and getattr(fusedopt, n).kernel is not None  # the self-stepping ones have their own
    }
    assert classes == exported
    assert [v.id for v in bench.variants(["Adam"])] == ["adam", "adam-amsgrad"]
    assert [v.id for v in bench.variants(["adam-amsgrad"])] == ["adam-amsgrad"]
    with pytest.raises(ValueError, match="unknown optimizer"):
        bench.variants(["adamm"])


def test_model_case_shape() -> None:
    case = bench.model_case()
    assert case.n_tensors == 160
    assert 11.1e6 < case.numel < 11.3e6
    assert bench.many_case().numel == 256_000


def test_measure_counts_calls() -> None:
    calls = []
    median, samples = bench.measure(calls.append, 1, repeats=3, min_time=0.001)
    assert len(samples) == 3 and median > 0 and len(calls) > 3


@pytest.mark.parametrize("backend", ["fused", "numpy"])
def test_verify_is_real(backend) -> None:
    """A correct step passes; a step that is wrong by a little is caught."""
    case = bench.size_case(9)
    params, grads = bench.make_arrays(case, "float32")
    variant = bench.variants(["adam"])[0]
    runner = bench.FusedRunner(variant, params, grads, backend)
    for _ in range(3):
        runner.step()
    bench.verify(runner)
    step = runner.opt.step

    def wrong(g):
        step(g)
        runner.params[0][100] += 1e-5  # 1% of a 1e-3 step

    runner.step = lambda: wrong(runner.grads)  # type: ignore[method-assign]
    with pytest.raises(bench.BenchCheckError, match=r"params\[0\]\.flat\[100\]"):
        bench.verify(runner)


def test_verify_catches_wrong_state() -> None:
    params, grads = bench.make_arrays(bench.size_case(6), "float64")
    runner = bench.FusedRunner(bench.variants(["sgd-momentum"])[0], params, grads, "fused")
    runner.step()
    step = runner.opt.step

    def wrong(g):
        step(g)
        sd = runner.opt.state_dict()
        sd["state"][0]["momentum_buffer"][5] *= 1.001
        runner.opt.load_state_dict(sd)

    runner.step = lambda: wrong(runner.grads)  # type: ignore[method-assign]
    with pytest.raises(bench.BenchCheckError, match="momentum_buffer"):
        bench.verify(runner)


def test_torch_runner_checked_against_reference() -> None:
    torch = pytest.importorskip("torch")
    params, grads = bench.make_arrays(bench.size_case(8), "float32")
    for vid in ("adam", "sgd-momentum", "rmsprop"):
        runner = bench.TorchRunner(bench.variants([vid])[0], params, grads, torch)
        assert runner.impl == ("foreach=False" if vid == "rmsprop" else "fused")
        for _ in range(3):
            runner.step()
        bench.verify(runner)


def test_run_benchmarks_json(tmp_path: Path) -> None:
    report = bench.run_benchmarks(
        optimizers=["sgd", "adam"],
        cases=[bench.size_case(8), bench.many_case(3, 70)],
        dtypes=["float32", "float64"],
        threads=[1, 2],
        backends=["fused", "numpy"],
        repeats=2,
        min_time=0.0005,
        progress=False,
    )
    data = json.loads(json.dumps(report.to_json()))
    assert data["schema"] == 1
    assert data["meta"]["build_info"]["target"] in data["meta"]["build_info"]["targets"]
    results = data["results"]
    assert len(results) == 2 * 2 * 4 * 2  # cases x dtypes x variants x threads
    for r in results:
        for key in (
            "case", "optimizer", "dtype", "threads", "pattern", "bytes_per_step", "fused_s",
            "numpy_s", "torch_s", "limit_s", "fused_gbs", "limit_gbs", "pct_of_limit",
            "limit_same_s", "pct_of_same", "speedup_numpy", "speedup_torch", "checked",
        ):  # fmt: skip
            assert key in r
        assert r["fused_s"] > 0 and r["numpy_s"] > 0 and r["limit_s"] > 0
        assert r["limit_same_s"] > 0
        assert r["torch_s"] is None
        assert r["checked"] == ["numpy", "fused"]
        itemsize = 4 if r["dtype"] == "float32" else 8
        reads, writes = int(r["pattern"][0]), int(r["pattern"][2])
        assert r["bytes_per_step"] == r["numel"] * itemsize * (reads + writes)
    kernels = {b["kernel"] for b in data["bandwidth"]}
    assert {"traffic 2R1W", "traffic 4R3W", "triad 2R1W"} <= kernels
    table = bench.format_table(report)
    assert "| 2^8 | adam | 4R3W | float32 | 1 |" in table


def test_cli_entry_writes_json_and_markdown(tmp_path: Path, capsys) -> None:
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    code = cli.main(
        [
            "bench",
            "--optimizers", "sgd-momentum", "--cases", "sizes,overhead", "--sizes", "7",
            "--dtypes", "float64", "--threads", "1", "--backends", "fused,numpy",
            "--repeats", "1", "--min-time", "0.0005", "--no-progress",
            "--json", str(out), "--markdown", str(md),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "| 2^7 | sgd-momentum | 3R2W | float64 | 1 |" in printed
    assert "| 1-element | sgd-momentum |" in printed
    data = json.loads(out.read_text())
    assert [r["case"] for r in data["results"]] == ["2^7", "1-element"]
    assert "Command:" in md.read_text()


def test_cli_arguments_rejected() -> None:
    parser = argparse.ArgumentParser(exit_on_error=False)
    cli_bench.add_arguments(parser)
    for bad in (["--sizes", "x"], ["--dtypes", "float16"], ["--optimizers", "nope"],
                ["--threads", "0"], ["--backends", "jax"], ["--cases", "huge"]):  # fmt: skip
        with pytest.raises(argparse.ArgumentError):
            parser.parse_args(bad)


def test_markdown_section_replaced_between_markers(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# title\nkeep\n{bench.MARK_START}\nold table\n{bench.MARK_END}\ntail\n")
    bench.write_markdown(str(doc), "new table\n")
    assert doc.read_text() == (
        f"# title\nkeep\n{bench.MARK_START}\nnew table\n{bench.MARK_END}\ntail\n"
    )
    plain = tmp_path / "table.md"
    bench.write_markdown(str(plain), "only this\n")
    assert plain.read_text() == "only this\n"


def test_comparison_of_two_runs() -> None:
    row = {"case": "2^10", "optimizer": "adam", "dtype": "float32", "threads": 1}
    old = {"results": [{**row, "fused_s": 2e-6}]}
    new = {"results": [{**row, "fused_s": 1e-6}, {**row, "threads": 2, "fused_s": 1e-6}]}
    table = bench.format_comparison(old, new)
    assert "| 2^10 | adam | float32 | 1 | 2.0 µs | 1.0 µs | 2.00x |" in table
    assert table.count("\n") == 2  # header, rule, one matched row


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_apart_staggers_page_offsets(dtype) -> None:
    arrays = [bench.apart(1000, dtype, k, fill=2.0) for k in range(10)]
    offsets = [a.ctypes.data % 4096 for a in arrays]
    assert len(set(offsets)) == 10 and all(o % 64 == 0 for o in offsets)
    for a in arrays:
        assert a.dtype == dtype and a.shape == (1000,) and a.flags.c_contiguous
        assert np.all(a == 2.0)
    inplace, readonly = bench.traffic_arrays(bench.Pattern(4, 3), bench.many_case(2, 100), dtype)
    assert len(inplace) == 3 and len(readonly) == 1 and len(inplace[0]) == 2
    _core.traffic(inplace, readonly, 0.5)
    assert np.all(inplace[2][1] == 1.5)


def test_step_traffic_arrays_are_the_steps_own_arrays() -> None:
    """The same-arrays limit sweeps the caller's params (in place) and grads, plus one
    state-like array per state slot; one sweep computes a = a * s + g exactly."""
    rng = np.random.default_rng(5)
    params = [rng.standard_normal((40, 30)), rng.standard_normal(7)]
    grads = [rng.standard_normal(p.shape) for p in params]
    before = [p.copy() for p in params]
    inplace, readonly = bench.step_traffic_arrays(bench.Pattern(4, 3), params, grads)
    assert len(inplace) == 3 and len(readonly) == 1
    for mine, p in zip(inplace[0], params, strict=True):
        assert np.shares_memory(mine, p)
    for k in (1, 2):
        for mine, p in zip(inplace[k], params, strict=True):
            assert mine.size == p.size and not np.shares_memory(mine, p)
    _core.traffic(inplace, readonly, 0.5)
    for p, p0, g in zip(params, before, grads, strict=True):
        np.testing.assert_array_equal(p, p0 * 0.5 + g)
    for state, g in zip(inplace[1], grads, strict=True):
        np.testing.assert_array_equal(state, 0.5 + g.reshape(-1))  # started at 1.0


def test_runner_without_copy_steps_the_given_arrays() -> None:
    params = [np.ones(5)]
    runner = bench.FusedRunner(
        bench.variants(["sgd"])[0], params, [np.ones(5)], "fused", copy=False
    )
    runner.step()
    assert runner.params[0] is params[0]
    np.testing.assert_allclose(params[0], 1 - 1e-3)
