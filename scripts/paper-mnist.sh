#!/usr/bin/env bash
# The MART paper's MNIST Table 2 at the paper's schedule (preset paper-4.2-mnist: 50 epochs,
# lr /10 at 20 and 40), as README "The paper's MNIST tables" describes it. Long: about
# 10 CPU-hours of training and evaluation on a 2-core machine (two runs at a time, one
# thread each). Safe to stop and start again: finished runs and stored evaluations are
# skipped and an interrupted run resumes after its last completed epoch.
#
#   export BENCH_HOME=/somewhere/outside/the/checkout  # the database and checkpoints
#   bash scripts/paper-mnist.sh train      # Table 2's five defenses, seed 0; MART, TRADES, Standard seed 1
#   bash scripts/paper-mnist.sh eval       # then: AutoAttack (first 1,000), Table 3, SPSA (MART)
#   bash scripts/paper-mnist.sh export     # results/reference/table{2,3}-mnist.* and paper-mnist/
#
# BENCH names the bench to run (default .venv/bin/bench); runs started by one commit are
# finished by the same commit's bench (its provenance says which). NOTE overrides the
# bundles' sentence on how the runs were made (export).
#
# Each slot trains and then evaluates (clean, FGSM, PGD-20, CW-inf on all 10,000 test
# points, best and last checkpoints) one run after another. The two slots claim their runs
# in the database, so a run is never trained twice, even by two copies of this script.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BENCH_HOME:?set BENCH_HOME to a folder outside the checkout (it holds the database and runs)}"
BENCH=${BENCH:-.venv/bin/bench}
COMMON=(--precision "${PRECISION:-bf16}" --monitor-subset 1000 --threads 1)
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-60}  # progress in the logs once a minute

slot() {  # slot DEFENSE:SEED ...
  for item in "$@"; do
    "$BENCH" experiment table2-mnist "${COMMON[@]}" --only "${item%%:*}" --seed "${item##*:}"
  done
}

runs() {  # the finished runs of the table, one name a line
  "$BENCH" experiment table2-mnist "${COMMON[@]}" --seeds 0,1 --dry-run \
    | awk '$1 == "done" { for (i = 1; i <= NF; i++) if ($i ~ /^mnist-smallcnn-/) print $i }'
}

case "${1:-train}" in
  train)
    slot mart:0 standard:0 dynamic:0 mart:1 > "$BENCH_HOME/slot-a.log" 2>&1 &
    slot trades:0 mma:0 trades:1 standard:1 > "$BENCH_HOME/slot-b.log" 2>&1 &
    echo "training in two slots; logs: $BENCH_HOME/slot-a.log, $BENCH_HOME/slot-b.log"
    wait
    ;;
  eval)  # best checkpoints; one process at a time (one thread each)
    for run in $(runs); do
      "$BENCH" eval "$run" --checkpoint best --attacks autoattack \
        --attack-param autoattack.parts=apgd-ce+apgd-t --test-subset 1000
      # the same first 1,000 points under the white-box attacks, so that the audit compares
      # AutoAttack with PGD-20 point by point (it compares evaluations of equal n)
      "$BENCH" eval "$run" --checkpoint best --attacks clean,fgsm,pgd20,cw20 --test-subset 1000
      case "$run" in  # SPSA, and PGD-20 on the same 500 points for the audit to compare
        *-mart-*) "$BENCH" eval "$run" --checkpoint best --attacks spsa,clean,pgd20 --test-subset 500 ;;
      esac
    done
    # Table 3 in one process: the examples crafted on a seed's surrogate are remembered and
    # shown to every run of that seed (attacks/transfer.py), so each is crafted once
    # shellcheck disable=SC2046
    "$BENCH" eval $(runs) --checkpoint best \
      --attacks transfer-fgsm,transfer-pgd10,transfer-pgd20,transfer-cw20
    # shellcheck disable=SC2046
    "$BENCH" audit $(runs)
    ;;
  export)  # the two tables the README shows, each a bundle (cells, masks, curves, specs,
    # provenance, hashes), the paper-layout tables with the seeds aggregated, and the curves
    note=${NOTE:-"SmallCNN, 17,000 offline MNIST training images, preset paper-4.2-mnist (50 epochs), ${PRECISION:-bf16}"}
    mkdir -p results/reference/paper-mnist
    for t in 2 3; do
      # shellcheck disable=SC2046
      "$BENCH" export $(runs) --table $t --out results/reference/table$t-mnist.json \
        --markdown results/reference/table$t-mnist.md --note "$note"
    done
    "$BENCH" table --paper --table 2 --ci --autoattack > results/reference/paper-mnist/table2-paper.md
    "$BENCH" table --paper --table 3 --ci > results/reference/paper-mnist/table3-paper.md
    # shellcheck disable=SC2046
    "$BENCH" plot curves $(runs) --out results/reference/paper-mnist/curves.png
    ;;
  *)
    echo "usage: $0 train|eval|export" >&2
    exit 2
    ;;
esac
