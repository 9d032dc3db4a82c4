#!/usr/bin/env bash
# One prepared GPU run (issue 14, item 5): from the unpacked tools/gpu-dist.sh package, on a Linux x86-64 machine
# with an NVIDIA GPU and no JDK, in the root of an m2q checkout (for fixtures/), it runs eight time-boxed steps and
# writes gpu-check.json and gpu-check.md (plus gpu-check.log and the JUnit XML) into OUTDIR:
#   1 nvidia-smi facts  2 the @Tag("gpu") tests  3 m2q bench --suite kernels
#   4 the fixture quantized (GPTQ) on CUDA and on the CPU: codes that differ, Δppl and KL of each
#   5 one 32B-shaped synthetic layer through GPTQ at 128 × 2048 tokens, and the projection to 64 layers
#   6 batch-1 decode at the 32B shapes, BF16 and W4A16   7 speculative decoding of the fixture with a fresh head
#   8 with python3 + torch + transformers: the fixture in Qwen2ForCausalLM against m2q (logits, perplexity)
# Each step has a time box, and the whole run a budget (default 450 s, so it ends inside 8 minutes); a step whose
# box does not fit in what is left is skipped and says so. A failed step records its last stderr lines.
#
#   m2q/bin/gpu-check [--out DIR] [--budget SECONDS] [--cpu-dry-run] [--keep]
# --keep leaves the scratch folder (/tmp/gpu-check.*: the releases, the synthetic layer, each step's output).
# --cpu-dry-run (or GPU_CHECK_DEVICE=cpu): every step on the CPU at the smallest settings, to test the script and
# the package where there is no GPU; the steps that need one (the gpu tests, the kernels suite) say "skipped".
set -uo pipefail
home="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
out="${OUT:-$PWD/gpu-check-out}"
budget=450
device="${GPU_CHECK_DEVICE:-cuda}"
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --cpu-dry-run) device=cpu; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
repo="$PWD"
fixture="$repo/fixtures/tiny-qwen2"
if [ ! -f "$fixture/model.safetensors" ]; then
  echo "gpu-check: $fixture/model.safetensors is missing; run from the root of an m2q checkout" >&2
  exit 2
fi
m2q="$home/bin/m2q"
java="$home/runtime/bin/java"
lib="$home/lib"
mkdir -p "$out"
work="$(mktemp -d /tmp/gpu-check.XXXXXX)"
steps="$work/steps"
mkdir -p "$steps"
log="$out/gpu-check.log"
: >"$log"
start=$(date +%s)
deadline=$((start + budget))
export M2Q_JAVA_OPTS="${M2Q_JAVA_OPTS:--Xmx96g}"
if [ "$device" = cpu ]; then
  export M2Q_JAVA_OPTS="-Xmx4g"
fi
echo "gpu-check: device $device, budget ${budget}s, work $work, out $out" | tee -a "$log"

# step NAME BOX FUNCTION [RESERVE]: runs FUNCTION under `timeout` (the whole process group: the JVMs too), boxed
# to BOX seconds or to what is left of the budget less RESERVE (kept for the steps after it), and records status,
# seconds and the last stderr lines. FUNCTION sees its box as $STEP_BOX.
step() {
  local name="$1" box="$2" fn="$3" reserve="${4:-0}" now left t rc s0
  now=$(date +%s)
  left=$((deadline - now - reserve))
  mkdir -p "$steps/$name"
  if [ "$left" -lt 15 ]; then
    printf 'skipped\nbudget spent (%ss left of %ss)\n' "$left" "$budget" >"$steps/$name/status"
    echo 0 >"$steps/$name/seconds"
    echo "== $name: skipped, budget spent" | tee -a "$log"
    return
  fi
  t=$((box < left ? box : left))
  echo "== $name (box ${t}s)" | tee -a "$log"
  s0=$(date +%s.%N)
  STEP_DIR="$steps/$name" STEP_BOX="$t" timeout -k 5 "$t" bash -c "$fn" >"$steps/$name/stdout" 2>"$steps/$name/stderr"
  rc=$?
  awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' >"$steps/$name/seconds"
  { echo "-- stdout"; tail -n 40 "$steps/$name/stdout"; echo "-- stderr"; tail -n 40 "$steps/$name/stderr"; } >>"$log"
  if [ -f "$steps/$name/skip" ]; then
    printf 'skipped\n%s\n' "$(cat "$steps/$name/skip")" >"$steps/$name/status"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    printf 'failed\ntimed out after %ss (box); last stderr:\n%s\n' "$t" "$(tail -n 5 "$steps/$name/stderr")" \
      >"$steps/$name/status"
  elif [ "$rc" != 0 ]; then
    printf 'failed\nexit %s; last stderr:\n%s\n' "$rc" "$(tail -n 5 "$steps/$name/stderr")" >"$steps/$name/status"
  else
    printf 'ok\n' >"$steps/$name/status"
  fi
  echo "   $(head -1 "$steps/$name/status") in $(cat "$steps/$name/seconds")s" | tee -a "$log"
}
export m2q java lib fixture repo work device out
# Every figure is from files the step writes into its $STEP_DIR; gpu-check.py reads them into the summaries.
# `run LABEL CMD...`: one timed command inside a step, its seconds in LABEL.seconds.
run() {
  local label="$1" s0 rc
  shift
  s0=$(date +%s.%N)
  "$@"
  rc=$?
  awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }' >"$STEP_DIR/$label.seconds"
  return $rc
}
skip() { echo "$1" >"$STEP_DIR/skip"; exit 0; }
# `junit [JVM OPTION...] LAUNCHER OPTION...`: the console launcher with the tests on the JVM's own class path (not
# the launcher's -cp), so that a test that starts a child JVM with java.class.path (CudaContextGpuTest) finds them.
junit() {
  local jvm=()
  while [ $# -gt 0 ] && [ "${1#-X}" != "$1" ]; do jvm+=("$1"); shift; done
  "$java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED "${jvm[@]}" \
    -cp "$lib/junit-platform-console-standalone.jar:$lib/m2q.jar:$lib/m2q-kernels-tests.jar" \
    org.junit.platform.console.ConsoleLauncher execute --disable-banner --disable-ansi-colors --details=tree \
    --reports-dir "$STEP_DIR/reports" "$@"
}
export -f run skip junit

if [ "$device" = cpu ]; then
  # the smallest settings: the same commands, small enough for 2 cores
  export NS=4 SL=64 SYN_LAYERS=1 SYN_HIDDEN=256 SYN_INTER=512 SYN_HEADS=2 SYN_KV=1 SYN_NS=2 SYN_SL=128 \
    SYN_FALLBACK_NS=1 EAGLE_STEPS=4 EAGLE_NEW=16 SPEC_TOKENS=16 TORCH_TOKENS=256 TEST_BOX=60 VAL_TOKENS=1024
else
  export NS=16 SL=256 SYN_LAYERS=1 SYN_HIDDEN=5120 SYN_INTER=27648 SYN_HEADS=40 SYN_KV=8 SYN_NS=128 SYN_SL=2048 \
    SYN_FALLBACK_NS=16 EAGLE_STEPS=60 EAGLE_NEW=32 SPEC_TOKENS=64 TORCH_TOKENS=2048 TEST_BOX=120 VAL_TOKENS=17804
fi

step 1-nvidia-smi 20 '
  command -v nvidia-smi >/dev/null || skip "no GPU: nvidia-smi not found"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm,clocks.max.mem \
    --format=csv,noheader >"$STEP_DIR/query.csv" || exit 1
  nvidia-smi >"$STEP_DIR/nvidia-smi.txt"; cp "$STEP_DIR/nvidia-smi.txt" "$out/nvidia-smi.txt"'

step 2-gpu-tests "$TEST_BOX" '
  [ "$device" = cuda ] || skip "no GPU: --cpu-dry-run ran the launcher on KernelBuildTest instead"
  mkdir -p "$work/tests/kernels" && ln -sfn "$repo/fixtures" "$work/tests/fixtures" && cd "$work/tests/kernels"
  run tests junit -Xmx8g --select-package dev.m2q.kernels --include-tag gpu
  rc=$?; cp "$STEP_DIR"/reports/TEST-junit-jupiter.xml "$out/" 2>/dev/null; exit $rc'
if [ "$device" = cpu ]; then
  # the launcher, the class path and the runtime, proven on a CPU test (it reads src/main/cuda beside kernels/)
  step 2b-launcher-cpu 60 '
    mkdir -p "$work/cpu-tests" && cd "$work/cpu-tests" && ln -sfn "$repo/kernels/src" src
    run tests junit --select-class dev.m2q.kernels.KernelBuildTest --exclude-tag gpu'
fi

step 3-bench-kernels 90 '
  [ "$device" = cuda ] || skip "no GPU: the kernels suite needs one"
  run bench "$m2q" bench --suite kernels --device cuda --repeat 20 --json >"$STEP_DIR/bench.json"'

step 4-fixture-cuda-vs-cpu 200 '
  # fixture-cuda is quantized on $device (the CPU in a dry run), fixture-cpu on the CPU, with the same options
  q() { "$m2q" quantize --model "$fixture" --out "$work/fixture-$1" --device "$2" --nsamples "$NS" --seqlen "$SL" \
          --method gptq --overwrite; }
  v() { "$m2q" validate --reference "$fixture" --candidate "$work/fixture-$1" --text "$fixture/heldout.txt" \
          --max-tokens "$VAL_TOKENS" --device "$device" --no-gates --no-report --decode-tokens 0 --json \
          >"$STEP_DIR/validate-$1.json"; }
  run quantize-cpu q cpu cpu || exit 1
  run quantize-cuda q cuda "$device" || exit 1
  python3 "$lib/gpu-check.py" codes "$work/fixture-cuda" "$work/fixture-cpu" >"$STEP_DIR/codes.json" || exit 1
  run validate-cpu v cpu || exit 1
  run validate-cuda v cuda' 150

# Run in order of certainty, the cheap steps first: the synthetic 32B layer (the longest, least known) goes last
# but one, and each earlier step keeps RESERVE seconds for those after it. The summaries list steps by number.
step 8-transformers 90 '
  python3 -c "import torch, transformers" 2>/dev/null || skip "python3 with torch and transformers not found"
  run torch python3 "$lib/gpu-check.py" torch "$fixture" "$repo/fixtures/golden" "$TORCH_TOKENS" 256 \
    >"$STEP_DIR/torch.json" || exit 1
  run m2q "$m2q" validate --model "$fixture" --text "$fixture/heldout.txt" --max-tokens "$TORCH_TOKENS" \
    --seqlen 256 --device "$device" --no-report --json >"$STEP_DIR/m2q.json"' 150

step 7-speculative 150 '
  rel="$work/fixture-cuda"; [ -f "$rel/config.json" ] || rel="$work/fixture-cpu"
  [ -f "$rel/config.json" ] || { echo "step 4 wrote no fixture release" >&2; exit 1; }
  run data "$m2q" eagle data --target "$fixture" --prompts "$repo/fixtures/eagle/train-prompts.txt" \
    --out "$work/eagle/data.jsonl" --max-new-tokens "$EAGLE_NEW" --overwrite || exit 1
  run train "$m2q" eagle train --target "$fixture" --quantized "$rel" --data "$work/eagle/data.jsonl" \
    --out "$work/eagle/head" --draft-vocab 1024 --steps "$EAGLE_STEPS" --lr 1e-3 --eval-every "$EAGLE_STEPS" \
    --overwrite || exit 1
  run validate "$m2q" validate --draft "$work/eagle/head" --candidate "$rel" --device "$device" \
    --prompts "$repo/fixtures/eagle/eval-prompts.txt" --k 1,3 --spec-tokens "$SPEC_TOKENS" --no-report --json \
    >"$STEP_DIR/spec.json"' 100

step 5-synth-32b-layer 240 '
  syn="$work/synth"
  run generate "$java" --add-modules jdk.incubator.vector -cp "$lib/m2q.jar:$lib/m2q-tools.jar" SynthCheckpoint \
    "$syn" "$SYN_LAYERS" "$SYN_HIDDEN" "$SYN_INTER" "$SYN_HEADS" "$SYN_KV" 4096 || exit 1
  cp "$fixture"/tokenizer*.json "$syn/"
  # calibration: the fixture text repeated (the weights are random; this times the layer, it judges nothing)
  for i in $(seq 12); do cat "$fixture/calibration.txt" "$fixture/heldout.txt"; done >"$syn/calibration.txt"
  echo "$SYN_NS $SYN_SL" >"$STEP_DIR/tokens"
  # 60 % of the box for the full 128 × 2048 run, the rest for the fallback
  if ! run quantize timeout $((STEP_BOX * 6 / 10)) "$m2q" quantize --model "$syn" --out "$work/synth-gptq" \
       --device "$device" --nsamples "$SYN_NS" --seqlen "$SYN_SL" --overwrite; then
    rm -rf "$work/synth-gptq" "$work/synth-gptq.m2q-partial"
    # the full 128 × 2048 did not fit its share of the box: fewer windows, and the summary scales linearly
    echo "$SYN_FALLBACK_NS $SYN_SL" >"$STEP_DIR/tokens"
    run quantize timeout $((STEP_BOX * 4 / 10 - 10)) "$m2q" quantize --model "$syn" --out "$work/synth-gptq" \
      --device "$device" --nsamples "$SYN_FALLBACK_NS" --seqlen "$SYN_SL" --overwrite || exit 1
  fi' 40

step 6-decode-32b 120 '
  syn="$work/synth"; [ -f "$syn/config.json" ] || { echo "step 5 wrote no synthetic model" >&2; exit 1; }
  b() { "$m2q" bench --model "$1" --device "$device" --kernels vector --prefill 16 --decode 32 --warmup 1 --repeat 3 \
        --json "${@:2}"; }
  run bf16 b "$syn" >"$STEP_DIR/bf16.json" || exit 1
  if [ ! -f "$work/synth-gptq/config.json" ]; then
    echo "rtn" >"$STEP_DIR/w4-source"
    "$m2q" quantize --model "$syn" --out "$work/synth-gptq" --method rtn --device "$device" --overwrite || exit 1
  fi
  run w4a16 b "$work/synth-gptq" --w4-kernel >"$STEP_DIR/w4a16.json"'

end=$(date +%s)
if command -v python3 >/dev/null; then
  python3 "$lib/gpu-check.py" summary "$steps" "$out" "$device" "$budget" "$((end - start))" || exit 70
else
  # no python3: statuses alone
  { echo "{\"device\": \"$device\", \"seconds\": $((end - start)), \"steps\": {"
    sep=""
    for d in "$steps"/*/; do
      n="$(basename "$d")"
      printf '%s"%s": {"status": "%s", "seconds": %s}' "$sep" "$n" "$(head -1 "$d/status")" \
        "$(cat "$d/seconds" 2>/dev/null || echo null)"
      sep=", "
    done
    echo "}}"; } >"$out/gpu-check.json"
  { echo "| step | status |"; echo "| --- | --- |"
    for d in "$steps"/*/; do echo "| $(basename "$d") | $(head -1 "$d/status") |"; done; } >"$out/gpu-check.md"
fi
[ "$keep" = 1 ] || rm -rf "$work"
echo "gpu-check: $((end - start))s; $out/gpu-check.json, $out/gpu-check.md" | tee -a "$log"
cat "$out/gpu-check.md"
