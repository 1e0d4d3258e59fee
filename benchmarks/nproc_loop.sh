#!/usr/bin/env bash
# The --nproc abort check (README, "One run across processes"): N times the command pair of
# tests/test_distributed.py::test_cli_nproc_two_rank_zero_alone_writes_and_replays_the_resumed_run
# (a fresh 2-process MART run, then the same command again, which finds it trained and
# dismisses the followers); each invocation must exit 0 without "terminate called".
# Usage: BENCH_DATA_ROOT=... bash benchmarks/nproc_loop.sh [N=50]   (both cores, ~15 min idle)
set -u
cd "$(dirname "$0")/.."
N=${1:-50}; ok=0; bad=0
for i in $(seq 1 "$N"); do
  d=$(mktemp -d)
  for pass in 1 2; do
    BENCH_HOME=$d/home .venv/bin/python -m bench.cli run --defense mart --model smallcnn \
      --train-subset 256 --test-subset 32 --epochs 2 --batch-size 64 --train-steps 10 \
      --threads 1 --nproc 2 --no-eval --quiet --db "$d/b.sqlite" --runs-dir "$d/runs" \
      > "$d/out.$pass" 2>&1
    rc=$?
    if [ $rc -ne 0 ] || grep -q "terminate called" "$d/out.$pass"; then
      bad=$((bad + 1)); echo "iteration $i pass $pass: rc=$rc"; tail -3 "$d/out.$pass"
    else
      ok=$((ok + 1))
    fi
  done
  rm -rf "$d"
done
echo "nproc-2 invocations: $ok clean, $bad aborted or failed (load average $(cut -d' ' -f1-3 /proc/loadavg))"
