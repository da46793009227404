#!/usr/bin/env bash
# The embedded default: the paper's three conditions at CPU scale, whole.
#   1. warm-start a tiny Qwen3-shaped model (byte tokenizer) on the built-in
#      arithmetic task with kpo sft, to a middling accuracy;
#   2. train KPO-strong, KPO-weak and IS-KPO-weak from it with kpo train,
#      one rollout rank and one learner rank under mpirun;
#   3. evaluate the warm start and each run with kpo eval;
#   4. print Table 2 (kpo diag), Table 3 (kpo gain), Table 1's statistics
#      (kpo stats), and a replay of the filter at V = 0.1 (kpo filter);
#   5. write the one-page report (Tables 1-3, Figure 2, training curves, PNG
#      and SVG) with tools/kpo_report.py, when a python3 with h5py, numpy,
#      pandas and matplotlib is there (else it says the step is skipped).
# Everything stays under runs/demo-<time>/ for the user to open.
set -euo pipefail
cd "$(dirname "$0")/.."
KPO=${KPO_BIN:-build/kpo}
OUT=${KPO_DEMO_OUT:-runs/demo-$(date +%Y%m%d-%H%M%S)}
STEPS=${KPO_DEMO_STEPS:-40}
SFT_STEPS=${KPO_DEMO_SFT_STEPS:-3000}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun -np 2 --oversubscribe)
CONDITIONS=(kpo-strong kpo-weak is-kpo-weak)
mkdir -p "$OUT"

say() { printf '\n### %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

# The first python3 that has what tools/ needs (KPO_PYTHON wins); none: empty.
tools_python() {
  local candidate
  for candidate in ${KPO_PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import h5py, numpy, pandas, matplotlib' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
}

report() {
  local py
  py=$(tools_python)
  if [ -z "$py" ]; then
    printf '\n### 5. Report skipped: no python3 with h5py, numpy, pandas and matplotlib (Debian: python3-h5py python3-pandas python3-matplotlib)\n'
    return 0
  fi
  say "5. One-page report: Tables 1-3, Figure 2, training curves (tools/kpo_report.py)" \
    "$py" tools/kpo_report.py --runs-dir "$OUT" --conditions "${CONDITIONS[*]}" \
      --eval "warm-start=$OUT/sft-model.eval.h5" --out "$OUT/report" --kpo "$KPO" \
      --baseline kpo-weak --reference kpo-strong --title "kpo demo: $OUT"
}

latest_checkpoint() { ls -d "$1"/checkpoints/step-* | sort | tail -n 1; }

evaluate() { # model_dir out.h5
  "${MPIRUN[@]}" "$KPO" eval --model "$1" --tokenizer byte --bench arith \
    --arith-difficulty 2 --arith-problems 200 --k 8 --max-new-tokens 24 \
    --prompt-template '{problem}\n' --chat-template raw --out "$2"
}

say "1. Warm start: kpo sft on the arithmetic task (difficulty 2)" \
  "$KPO" sft --init tiny --out "$OUT/sft-model" --difficulty 2 --steps "$SFT_STEPS" --log-every 500

for cond in "${CONDITIONS[@]}"; do
  say "2. Train $cond: 1 rollout rank + 1 learner rank, $STEPS steps" \
    "${MPIRUN[@]}" "$KPO" train configs/base-paper.ini "configs/$cond.ini" configs/tiny.ini \
      --set run.out="$OUT/$cond" --set model.path="$OUT/sft-model" \
      --set rollout.ranks=1 --set run.steps="$STEPS"
done

say "3. Evaluate the warm start" evaluate "$OUT/sft-model" "$OUT/sft-model.eval.h5"
for cond in "${CONDITIONS[@]}"; do
  say "3. Evaluate $cond (its final checkpoint)" evaluate "$(latest_checkpoint "$OUT/$cond")" "$OUT/$cond/eval.h5"
done

say "4. Table 2: innovation statistics, runs side by side" \
  "$KPO" diag "$OUT/kpo-strong/run.h5" "$OUT/kpo-weak/run.h5" "$OUT/is-kpo-weak/run.h5" \
    --steps 1,5,10,20,30,40
say "4. Table 3: gain and thresholds of the weak setting, computed" \
  "$KPO" gain --q 0.01 --v 1 --kappa 3 --tokens 1,2,10,100
say "4. Table 1's test: IS-KPO-weak against KPO-weak, gap to KPO-strong recovered" \
  "$KPO" stats "$OUT/is-kpo-weak/eval.h5" "$OUT/kpo-weak/eval.h5" "$OUT/kpo-strong/eval.h5"
say "4. Would saturation activate at V = 0.1, kappa = 2? Replay IS-KPO-weak's recorded log-ratios" \
  "$KPO" filter "$OUT/is-kpo-weak/run.h5" --q 0.01 --v 0.1 --mode sigma --kappa 2

report

printf '\nEverything is in %s: run.h5 and checkpoints/ per condition, eval files, the warm start, report/ (when written).\n' "$OUT"
