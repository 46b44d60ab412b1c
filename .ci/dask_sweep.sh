#!/usr/bin/env bash
# CI: `fusedopt sweep` on a real Dask cluster. Starts a scheduler on a free local port and
# two workers (one process, one thread each) in the background, waits until both have
# joined, then runs tests/test_sweep.py against it (FUSEDOPT_DASK_SCHEDULER: the tests of
# an external scheduler run instead of skipping; with CI=true a missing Dask fails them)
# and one real CLI sweep, whose rerun with the same results file must skip
# every run. The processes are stopped by PID on exit, whatever happened.
# Needs: pip install ".[test,demo,dask]"   Usage: bash .ci/dask_sweep.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python}

work=$(mktemp -d)
pids=()
stop() {
    local rc=$?
    # the workers first (their scheduler still up, they close at once), the scheduler last
    local i pid
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        # a graceful close takes a second or two; then it is killed
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        for log in "$work"/*.log; do echo "--- $log"; tail -n 30 "$log"; done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap stop EXIT

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
address="tcp://127.0.0.1:$port"
"$PY" -m distributed.cli.dask_scheduler --host 127.0.0.1 --port "$port" --no-dashboard \
    >"$work/scheduler.log" 2>&1 &
pids+=($!)
for i in 1 2; do
    "$PY" -m distributed.cli.dask_worker "$address" --nthreads 1 --nworkers 1 --no-dashboard \
        --name "ci-worker-$i" >"$work/worker-$i.log" 2>&1 &
    pids+=($!)
done

"$PY" - "$address" <<'EOF'
import sys
from distributed import Client

with Client(sys.argv[1], timeout=60) as client:
    client.wait_for_workers(2, timeout=120)
    print(f"dask cluster up: {sys.argv[1]}, workers: {sorted(client.nthreads())}")
EOF

export FUSEDOPT_DASK_SCHEDULER="$address"
"$PY" -m pytest tests/test_sweep.py -q -p no:cacheprovider

sweep=("$PY" -m fusedopt sweep --scheduler "$address" --optimizers Adam,SGD
       --lrs 1,0.1,0.01 --schedules constant,cosine --epochs 2 --n-train 300 --hidden 64
       --results "$work/sweep.jsonl" --no-progress)
"${sweep[@]}" | tee "$work/first.out"
grep -q "12 runs: 12 ran, 0 skipped" "$work/first.out"
[ "$(wc -l <"$work/sweep.jsonl")" -eq 12 ]
"${sweep[@]}" | tee "$work/rerun.out"
grep -q "skipping 12 of 12 runs already in" "$work/rerun.out"
grep -q "12 runs: 0 ran, 12 skipped" "$work/rerun.out"
[ "$(wc -l <"$work/sweep.jsonl")" -eq 12 ]
echo "dask sweep: OK"
