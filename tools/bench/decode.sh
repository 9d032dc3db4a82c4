#!/usr/bin/env bash
# Issue 16 item 2: the decode and speculative-verify kernels at the Qwen2.5-32B shapes, from DRAM, for a quiet
# machine (about 8 minutes on 2 cores; nothing else should run meanwhile):
#   1. ReadBandwidthBench: the read ceiling (DRAM and L3) the kernels are read against;
#   2. MatVecBench, cache=cold: BF16 vs W4A16 (G = 128) per shape for 1, 4 and 8 rows
#      (W4 vs BF16 = bf16/w4 at rows = 1; verify/decode = time at k + 1 rows / time at 1 row);
#   3. DecodeCostBench: one 32B decoder layer as W4A16 and the bf16 lm_head for 1, 2, 4, 6 and 8 rows, and the
#      EAGLE-3 head's step (bf16, one row): c = draftStep / (64·targetLayer + targetLmHead) at one row.
# Raw JMH JSON and text go to target/bench-decode/ (or $1). Build first: JMH comes from Maven Central (-Pjmh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$here/target/bench-decode}"
mkdir -p "$out"
cd "$here"
source tools/find-jdk.sh
jdk="$(m2q_find_jdk)"
./mvnw -q -B -Pjmh -Dm2q.nvcc.skip=true -Dspotless.check.skip=true -pl validate -am package -DskipTests
jar=validate/target/benchmarks.jar
run() {
  local name="$1"
  shift
  echo "== $name: $*" | tee -a "$out/decode.txt"
  "$jdk/bin/java" --add-modules jdk.incubator.vector -jar "$jar" "$@" -rf json -rff "$out/$name.json" 2>&1 \
    | grep -E '^(Benchmark|ReadBandwidthBench|MatVecBench|DecodeCostBench)' | tee -a "$out/decode.txt"
}
{ date -u; uptime; lscpu | grep -E 'Model name|^CPU\(s\)'; } | tee "$out/decode.txt"
run bandwidth 'ReadBandwidthBench' -wi 2 -i 3
run matvec 'MatVecBench' -p cache=cold -p rows=1,4,8 -wi 2 -i 3
run layer 'DecodeCostBench.target' -p rows=1,2,4,6,8
run draft 'DecodeCostBench.draftStep' -p rows=1
{ date -u; uptime; } | tee -a "$out/decode.txt"
