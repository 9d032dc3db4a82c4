#!/usr/bin/env bash
# The CPU kernel benchmarks of issue 16 (JMH, gptq/src/jmh): the machine's fp32 FMA peak and read bandwidth, then
# the Hessian rank-k update (syrkUpper), GPTQ's lazy-batch update (gemmAcc) and the prefill/calibration matmul at
# 32B-class shapes, each printed as GFLOP/s (:gflop) and as percent of the peak just measured (:peakPct).
# About 7 minutes on a 2-core machine; run it with nothing else running. Results: JMH's text on stdout and one
# JSON file per benchmark under $OUT (default target/bench-kernels).
#
#   tools/bench/kernels.sh              # build the benchmarks jar, then run everything
#   SKIP_BUILD=1 tools/bench/kernels.sh # reuse gptq/target/benchmarks.jar
#   JMH_JAVA_OPTS=-Djmh.ignoreLock=true  # extra JVM options for the JMH runner (here: beside another JMH run)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
source tools/find-jdk.sh
JDK="$(m2q_find_jdk)"
OUT="${OUT:-target/bench-kernels}"
mkdir -p "$OUT"
if [[ -z "${SKIP_BUILD:-}" ]]; then
    ./mvnw -q -o -B -Pjmh -Dm2q.nvcc.skip=true -Dspotless.check.skip=true -pl gptq -am package -DskipTests
fi
jar=gptq/target/benchmarks.jar
jmh() {
    local name="$1"
    shift
    # shellcheck disable=SC2086
    "$JDK/bin/java" ${JMH_JAVA_OPTS:-} --add-modules jdk.incubator.vector -jar "$jar" "$@" -f 1 -rf json -rff "$OUT/$name.json"
}

# 1. The roofline: 2-thread FMA peak (the figure the other benchmarks' :peakPct is read against) and bandwidth.
jmh peak 'PeakBench.(fma2|stream2)' -wi 1 -w 2s -i 3 -r 3s
peak=$(python3 - "$OUT/peak.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    sec = {k.lstrip(":"): v for k, v in r.get("secondaryMetrics", {}).items()}
    if r["benchmark"].endswith("fma2"):
        print(round(sec["gflop"]["score"], 1))
PY
)
echo "measured fp32 FMA peak (2 threads): $peak GFLOP/s"
args=(-jvmArgsAppend "-Dm2q.peak.gflops=$peak")

# 2. syrkUpper, 512 tokens, K = 5120 and 27648 (C = 3.06 GB).
jmh hessian 'HessianBench.syrkUpper' -p kernels=vector -wi 1 -w 5s -i 3 -r 5s "${args[@]}"
# 3. GPTQ's lazy-batch update, N = 5120, B = 128, K = 5120 and 27648.
jmh lazy 'LazyUpdateBench' -wi 1 -w 4s -i 3 -r 4s "${args[@]}"
# 4. The prefill matmul, BF16 weights, 512 and 2048 rows, the four linear shapes of a 32B layer.
jmh prefill 'PrefillBench' -wi 1 -w 4s -i 3 -r 4s "${args[@]}"

python3 - "$OUT" <<'PY'
import json, os, sys
print("\n%-60s %12s %10s" % ("benchmark (params)", "GFLOP/s", "% of peak"))
for name in ("peak", "hessian", "lazy", "prefill"):
    path = os.path.join(sys.argv[1], name + ".json")
    if not os.path.exists(path):
        continue
    for r in json.load(open(path)):
        sec = {k.lstrip(":"): v for k, v in r.get("secondaryMetrics", {}).items()}
        if "gflop" not in sec:
            continue
        params = ",".join("%s=%s" % kv for kv in sorted(r.get("params", {}).items()))
        pct = sec.get("peakPct", {}).get("score", float("nan"))
        label = r["benchmark"].rsplit(".", 2)[-2] + "." + r["benchmark"].rsplit(".", 1)[-1]
        print("%-60s %12.1f %10.1f" % (label + " (" + params + ")", sec["gflop"]["score"], pct))
PY
