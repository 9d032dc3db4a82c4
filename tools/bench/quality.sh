#!/usr/bin/env bash
# Issue 17 item 4: the quantization-quality table on the bundled fixture. Each run quantizes the tiny model with
# one method and setting (64 × 512 calibration tokens, the README demo's), then `m2q validate` reads the release
# back from disk and scores it against BF16 on the held-out text and the bundled task. Rows come from RUNS below
# (or the names given as arguments); results land in $OUT (default target/quality): one folder per run with
# the release, validation.json/.md and quantize.log, and quality.tsv with one line per run.
# Quality figures are deterministic (seeded); the seconds depend on the machine's load.
#   tools/bench/quality.sh                      # every run below
#   tools/bench/quality.sh g128-gptq g128-rtn   # some of them
#   SEEDS="1 2 3" tools/bench/quality.sh g128-gptq   # runs g128-gptq-s1.. with --seed 1.. (other calibration draws)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${OUT:-$here/target/quality}"
calib=(--nsamples 64 --seqlen 512)
declare -A RUNS=(
  [g128-rtn]="--method rtn"
  [g128-rtn-clip]="--method rtn --clip-search"
  [g128-gptq]="--method gptq"
  [g128-gptq-clip]="--method gptq --clip-search"
  [g128-gptq-actorder]="--method gptq --act-order"
  [g128-gptq-actorder-clip]="--method gptq --act-order --clip-search"
  [g128-ar-same-light]="--method autoround --recipe light --autoround-target same-input"
  [g128-ar-same]="--method autoround --autoround-target same-input"
  [g128-ar-bf16-light]="--method autoround --recipe light --autoround-target bf16-stream"
  [g128-ar-bf16]="--method autoround --autoround-target bf16-stream"
  [row-rtn]="--group-size -1 --method rtn"
  [row-rtn-clip]="--group-size -1 --method rtn --clip-search"
  [row-gptq]="--group-size -1 --method gptq"
  [row-gptq-clip]="--group-size -1 --method gptq --clip-search"
  [row-gptq-actorder]="--group-size -1 --method gptq --act-order"
  [row-gptq-actorder-clip]="--group-size -1 --method gptq --act-order --clip-search"
  [row-ar-same-light]="--group-size -1 --method autoround --recipe light --autoround-target same-input"
  [row-ar-same]="--group-size -1 --method autoround --autoround-target same-input"
  [row-ar-bf16-light]="--group-size -1 --method autoround --recipe light --autoround-target bf16-stream"
  [row-ar-bf16]="--group-size -1 --method autoround --autoround-target bf16-stream"
  [w8-rtn]="--bits 8 --method rtn"
  [w8-rtn-clip]="--bits 8 --method rtn --clip-search"
  [w8-gptq]="--bits 8 --method gptq"
  [w8-gptq-clip]="--bits 8 --method gptq --clip-search"
  [w8-gptq-actorder]="--bits 8 --method gptq --act-order"
  [w8-ar-same-light]="--bits 8 --method autoround --recipe light --autoround-target same-input"
  [w8-ar-bf16-light]="--bits 8 --method autoround --recipe light --autoround-target bf16-stream"
  [w8-ar-same]="--bits 8 --method autoround --autoround-target same-input"
  [w8-ar-bf16]="--bits 8 --method autoround --autoround-target bf16-stream"
)
# Extra runs: EXTRA_NAME and EXTRA_ARGS add one (for example the best method with --format compressed-tensors
# --scheme w4a8-fp8 --kv-cache fp8).
if [[ -n "${EXTRA_NAME:-}" ]]; then RUNS[$EXTRA_NAME]="$EXTRA_ARGS"; fi
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then mapfile -t names < <(printf '%s\n' "${!RUNS[@]}" | sort); fi
mkdir -p "$out"
cd "$here"
tsv="$out/quality.tsv"
[[ -f "$tsv" ]] || printf 'run\targs\tquantize_s\tppl\tdppl_pct\tdppl_low\tdppl_high\tkl_mean\tkl_p99\ttop1\ttask_acc\ttask_delta\ttask_delta_low\ttask_delta_high\n' > "$tsv"
jobs=()
for base in "${names[@]}"; do
  : "${RUNS[$base]:?unknown run $base}"
  if [[ -z "${SEEDS:-}" ]]; then jobs+=("$base"); else for seed in $SEEDS; do jobs+=("$base-s$seed"); done; fi
done
for name in "${jobs[@]}"; do
  base="${name%-s[0-9]*}"
  args="${RUNS[$base]}"
  if [[ "$name" != "$base" ]]; then args="$args --seed ${name##*-s}"; fi
  dir="$out/$name"
  echo "== $name: $args"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  ./m2q quantize --model fixtures/tiny-qwen2 --out "$dir" "${calib[@]}" $args --overwrite > "$out/$name.quantize.log" 2>&1
  t1=$(date +%s.%N)
  ./m2q validate --reference fixtures/tiny-qwen2 --candidate "$dir" --text fixtures/tiny-qwen2/heldout.txt \
    --tasks fixtures/tasks/verse-endings.jsonl --decode-tokens 0 --no-gates > "$out/$name.validate.log" 2>&1 || true
  jq -r --arg run "$name" --arg args "$args" --arg qs "$(echo "$t1 - $t0" | bc)" '
    [$run, $args, $qs, .accuracy.candidate.ppl, .accuracy.candidate.ppl_increase_percent,
     .accuracy.candidate.ppl_increase_ci95[0], .accuracy.candidate.ppl_increase_ci95[1], .accuracy.candidate.kl_mean,
     .accuracy.candidate.kl_p99, .accuracy.candidate.top1_agreement, .tasks.per_task[0].candidate.accuracy,
     .tasks.per_task[0].delta_points, .tasks.per_task[0].delta_low, .tasks.per_task[0].delta_high] | @tsv' \
    "$dir/validation.json" | tee -a "$tsv"
done
