#!/usr/bin/env bash
# The lecture's fake-robustness table, reproduced on MNIST SmallCNN (issue 21's proof):
# masking defenses (input transformations in front of a natural network, input-gradient
# regularisation, defensive distillation, thermometer encoding with and without adversarial
# training, on LS-PGA and through the ramp) beside Standard AT, TRADES and MART, each put
# through the checklist (`bench audit --adaptive`: probe, then BPDA/EOT, LS-PGA behind a
# quantiser, the hard-label RayS and PGD-100 beside PGD-20; then `bench sweep` up to eps 1),
# then written to results/reference/masking.{json,md}.
#
#   BENCH_HOME=/tmp/masking BENCH_DATA_ROOT=... bash scripts/masking.sh [all|train|eval|table]
#
# Settings (CPU-sized, not a paper setting): preset demo-mnist (6 epochs, PGD-5 inner
# attack), eps 0.3 for training and evaluation, the first 4,000 training and 500 test
# images, seed 0, bf16 training on one thread. TRAIN, TEST and EPOCHS override the sizes
# (a quick check of the script itself: TRAIN=500 TEST=50 MONITOR=50 EPOCHS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-.venv/bin/bench}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread: beside other jobs, more would only wait on each other
stage=${1:-all}
common=(--model smallcnn --preset demo-mnist --eps 0.3 --train-subset "${TRAIN:-4000}"
        --test-subset "${TEST:-500}" --monitor-subset "${MONITOR:-200}" --precision bf16 --threads 1 --seed 0
        --quiet ${EPOCHS:+--epochs "$EPOCHS"})
DEFENSES=(natural igr standard trades mart thermometer thermometer-at)
TRANSFORMS=(bit-depth:bits=1 feature-squeeze jpeg resize-pad resize-pad:draws=10)

runs() {  # names of the runs in this BENCH_HOME's database (first column of `bench ls runs`)
  "$BENCH" ls runs | awk -F'|' 'NR > 3 {gsub(/ /, "", $2); print $2}'
}
run_name() { runs | grep -E -- "^mnist-smallcnn-$1-demo-mnist-.*-s0-" | grep -vF + | tail -1; }

# Defensive distillation at T = 10 with lr 0.01 (the loss is scaled by T): at the paper's
# T = 100 the demo's 6 epochs leave the teacher at chance (defenses/distillation.py).
DISTILL=(--param temperature=10 --lr 0.01)

if [[ $stage == all || $stage == train ]]; then
  for d in "${DEFENSES[@]}"; do
    "$BENCH" run --defense "$d" "${common[@]}" --attacks clean,pgd20
  done
  "$BENCH" run --defense distillation "${DISTILL[@]}" "${common[@]}" --attacks clean,pgd20
  # thermometer-at trains on LS-PGA (the paper's); the ramp-trained one beside it shows what
  # training against a weaker stand-in leaves
  "$BENCH" run --defense thermometer-at --param inner=bpda "${common[@]}" --attacks clean,pgd20
  # on LS-PGA the demo's 6 epochs stay on the plateau: 20, with the lr drop at 15
  "$BENCH" run --defense thermometer-at "${common[@]}" --epochs 20 --milestones 15 --attacks clean,pgd20
fi
if [[ $stage == all || $stage == eval ]]; then
  natural=$(run_name natural)
  runs=()
  for t in "${TRANSFORMS[@]}"; do
    "$BENCH" eval "$natural" --transform "$t" --attacks clean,pgd20 --quiet
  done
  for d in "${DEFENSES[@]}" distillation; do runs+=("$(run_name "$d")"); done
  mapfile -t -O "${#runs[@]}" runs < <(runs | grep -E -- "^mnist-smallcnn-thermometer-at-" | grep -vF +)
  mapfile -t runs < <(printf '%s\n' "${runs[@]}" | awk '!seen[$0]++')
  mapfile -t transformed < <(runs | grep -F -- "$natural+")
  "$BENCH" audit "${runs[@]}" "${transformed[@]}" --adaptive
  # the eps sweep up to eps 1, where every model must fall to ~0% (`sweep-reaches-zero`)
  for r in "${runs[@]}" "${transformed[@]}"; do "$BENCH" sweep "$r" --quiet; done
fi
if [[ $stage == all || $stage == table ]]; then
  "$BENCH" table --masking --ci --format json --output results/reference/masking.json
  "$BENCH" table --masking --ci --output results/reference/masking.md
fi
