"""Two (or more) builds of fusedopt, timed in one run: e.g. the default (dispatched) build
against a ``FUSEDOPT_NATIVE=ON`` build, or this tree against an older one.

Each build is a Python interpreter (a virtual environment) with that build installed. The
builds run in turn, ``--rounds`` times, each round in a fresh process of each build, so
that they share the machine's conditions; the figure of a case is the median over rounds
of each round's median step time.

    python benchmarks/compare_builds.py dispatched=/tmp/venv-a/bin/python \\
        native=/tmp/venv-b/bin/python --threads 1 --rounds 5

Cases: Adam on one tensor of 2^25 float32 elements, on 1000 tensors of 256, and on a
1-element tensor (the overhead of a call); ``--cases sizes``: one tensor of 2^16 ... 2^22
elements; ``--threads`` sets fusedopt's threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import json, statistics, sys, time
    import numpy as np
    import fusedopt as fo

    threads, which = int(sys.argv[1]), sys.argv[2]
    fo.set_num_threads(threads)
    rng = np.random.default_rng(0)
    if which == "sizes":  # mid-size steps, where waking the pool's workers shows
        cases = {f"2^{e}": [1 << e] for e in (16, 17, 18, 20, 22)}
        repeats = {k: max(20, (1 << 24) // v[0]) for k, v in cases.items()}
    else:
        cases = {"2^25": [1 << 25], "1000x256": [256] * 1000, "1 element": [1]}
        repeats = {"2^25": 15, "1000x256": 300, "1 element": 20000}
    out = {"target": fo.build_info().get("target", "no dispatch")}
    for name, sizes in cases.items():
        params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        grads = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        opt = fo.Adam(params, lr=1e-4)
        for _ in range(3):
            opt.step(grads)
        if name == "1 element":  # per call, timed in batches
            batches = []
            for _ in range(15):
                t = time.perf_counter()
                for _ in range(repeats[name] // 15):
                    opt.step(grads)
                batches.append((time.perf_counter() - t) / (repeats[name] // 15))
            out[name] = statistics.median(batches)
            continue
        ts = []
        for _ in range(repeats[name]):
            t = time.perf_counter()
            opt.step(grads)
            ts.append(time.perf_counter() - t)
        out[name] = statistics.median(ts)
    print(json.dumps(out))
    """
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("builds", nargs="+", help="LABEL=PYTHON (an interpreter with that build)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--cases",
        choices=("default", "sizes"),
        default="default",
        help="default: 2^25, 1000x256, 1 element; sizes: one tensor of 2^16 ... 2^22",
    )
    args = parser.parse_args(argv)
    builds = dict(b.split("=", 1) for b in args.builds)
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in builds}
    for r in range(args.rounds):
        for label, python in builds.items():
            proc = subprocess.run(
                [python, "-c", CHILD, str(args.threads), args.cases],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[label].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    first = next(iter(builds))
    cases = [k for k in runs[first][0] if k != "target"]
    print(f"Adam, float32, {args.threads} thread(s), median of {args.rounds} rounds")
    header = "case        " + "".join(
        f"{label + ' (' + runs[label][0]['target'] + ')':>28s}" for label in builds
    )
    print(header)
    for case in cases:
        med = {label: statistics.median(r[case] for r in runs[label]) for label in builds}
        cells = []
        for label in builds:
            unit, scale = ("µs", 1e6) if med[label] < 1e-3 else ("ms", 1e3)
            # the ratio to the first build within each round (same conditions), then the median
            ratio = statistics.median(
                r[case] / f[case] for r, f in zip(runs[label], runs[first], strict=True)
            )
            cells.append(f"{med[label] * scale:10.3f} {unit} ({ratio:5.3f}x)")
        print(f"{case:12s}" + "".join(f"{c:>28s}" for c in cells))
    print("(x: the median over rounds of the time relative to the first build in the same round)")


if __name__ == "__main__":
    main()
