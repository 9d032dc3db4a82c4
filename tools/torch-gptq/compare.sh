#!/usr/bin/env bash
# m2q quantize beside the torch reference GPTQ (tools/torch-gptq/gptq_torch.py) on the same calibration ids, then
# m2q validate of both against the BF16 model on held-out text (issue 16 item 4). From the repository root:
#
#   [SEED=0] tools/torch-gptq/compare.sh [NSAMPLES [SEQLEN]]   (default 64 512, the fixture's benchmark row)
#
# Environment: M2Q_OPENBLAS_DIR, a folder holding OpenBLAS's libblas.so.3/liblapack.so.3 for Debian's torch
# (default: the system's openblas-pthread folder; without one, torch runs on the reference BLAS and the script
# says so). Writes target/cmp-m2q, target/cmp-torch and target/cmp/ (time -v logs, ids, validation reports,
# table.md); prints the table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
nsamples="${1:-64}"
seqlen="${2:-512}"
seed="${SEED:-0}"
model=fixtures/tiny-qwen2
calib="$model/calibration.txt"
heldout="$model/heldout.txt"
work=target/cmp
py=/usr/bin/python3
mkdir -p "$work"

blas="${M2Q_OPENBLAS_DIR:-/usr/lib/x86_64-linux-gnu/openblas-pthread}"
if [ -f "$blas/libblas.so.3" ]; then
  export LD_LIBRARY_PATH="$blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  blas_note="OpenBLAS ($blas)"
else
  blas_note="the reference BLAS (no OpenBLAS found: set M2Q_OPENBLAS_DIR)"
  echo "compare: warning: torch runs on $blas_note" >&2
fi
export OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2

echo "compare: load before the runs: $(uptime)" | tee "$work/uptime.txt"

# The CLI jar is built by the launcher when stale; build it first so no run below times a build.
./m2q --version >/dev/null

# The calibration stream as m2q builds it: one .txt file is one document, so its ids are m2q tokenize's.
./m2q tokenize --model "$model" --text "$calib" >"$work/stream.json"

/usr/bin/time -v -o "$work/m2q.time" ./m2q quantize --model "$model" --out target/cmp-m2q \
  --nsamples "$nsamples" --seqlen "$seqlen" --seed "$seed" --overwrite 2>"$work/m2q.log" | tee "$work/m2q.out"

/usr/bin/time -v -o "$work/torch.time" "$py" tools/torch-gptq/gptq_torch.py --model "$model" --out target/cmp-torch \
  --stream "$work/stream.json" --nsamples "$nsamples" --seqlen "$seqlen" --seed "$seed" \
  --samples-out "$work/windows-torch.json" --threads 2 2>"$work/torch.log" | tee "$work/torch.out"

# The same ids: m2q's own CalibrationSet draws the windows once more (jshell on the CLI jar) and they must equal
# the torch script's; and the stream's sha256 must equal the one m2q's manifest records.
jdk="$(source tools/find-jdk.sh && m2q_find_jdk)"
cat >"$work/windows.jsh" <<EOF
import dev.m2q.core.calib.CalibrationSet;
import dev.m2q.core.tokenizer.Tokenizer;
import java.nio.file.*;
var set = CalibrationSet.load(List.of(Path.of("$calib")), Tokenizer.load(Path.of("$model/tokenizer.json")), null);
Files.writeString(Path.of("$work/windows-m2q.json"), dev.m2q.core.json.Json.write(set.sample($nsamples, $seqlen, $seed)));
/exit
EOF
"$jdk/bin/jshell" --class-path cli/target/m2q.jar -R-Xmx1g "$work/windows.jsh"

for side in m2q torch; do
  rm -rf "$work/validate-$side"
  set +e
  ./m2q validate --reference "$model" --candidate "target/cmp-$side" --text "$heldout" \
    --report-dir "$work/validate-$side" >"$work/validate-$side.out" 2>&1
  rc=$?
  set -e
  echo "compare: m2q validate of target/cmp-$side exited $rc (0: all gates pass, 1: a gate or check failed)"
  if [ "$rc" -ge 2 ]; then
    cat "$work/validate-$side.out" >&2
    exit "$rc"
  fi
done

"$py" - "$work" "$nsamples" "$seqlen" "$blas_note" "$seed" <<'EOF'
import hashlib, json, os, re, sys
import numpy as np
sys.path.insert(0, "tools/torch-gptq")
import gptq_torch as g

work, nsamples, seqlen, blas_note, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
stream = json.load(open(f"{work}/stream.json"))
manifest = json.load(open("target/cmp-m2q/m2q-manifest.json"))
sha = hashlib.sha256(np.array(stream, dtype="<i4").tobytes()).hexdigest()
if sha != manifest["calibration"]["sha256"] or len(stream) != manifest["calibration"]["tokens"]:
    sys.exit(f"compare: the tokenized stream ({sha}, {len(stream)} ids) is not m2q's calibration stream "
             f"({manifest['calibration']['sha256']}, {manifest['calibration']['tokens']})")
if json.load(open(f"{work}/windows-torch.json")) != json.load(open(f"{work}/windows-m2q.json")):
    sys.exit("compare: the torch script's windows differ from m2q's CalibrationSet.sample")

def time_v(path):
    t = open(path).read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
    user = float(re.search(r"User time \(seconds\): (\S+)", t).group(1))
    sys_ = float(re.search(r"System time \(seconds\): (\S+)", t).group(1))
    return secs, rss / 1024, user + sys_

def validation(side):
    v = json.load(open(f"{work}/validate-{side}/validation.json"))
    acc = v["accuracy"]
    c = acc["candidate"]
    return acc["reference_ppl"], c["ppl"], c["ppl_increase_percent"], c["kl_mean"], c["kl_p99"], c["top1_agreement"]

def codes(side):
    st = g.Safetensors(f"target/cmp-{side}/model.safetensors")
    out = {}
    for name in st.names():
        if name.endswith(".qweight"):
            import torch
            out[name] = g.unpack_qweight(torch.from_numpy(np.array(st.array(name))))
    return out

loss_m2q = sum(json.loads(l)["loss"] for l in open("target/cmp-m2q/m2q-report.jsonl") if '"loss"' in l)
loss_torch = sum(json.loads(l)["loss"] for l in open("target/cmp-torch/gptq-torch-report.jsonl"))
timing = json.load(open("target/cmp-torch/gptq-torch-timing.json"))
cm, ct = codes("m2q"), codes("torch")
same = sum(int((cm[n] == ct[n]).sum()) for n in cm)
total = sum(cm[n].numel() for n in cm)
off_by_one = sum(int(((cm[n] - ct[n]).abs() == 1).sum()) for n in cm)
first = [n for n in cm if n.startswith("model.layers.0.")]
same0 = sum(int((cm[n] == ct[n]).sum()) for n in first) / sum(cm[n].numel() for n in first)

rows = []
for side, label in (("m2q", "m2q quantize (Java, CPU)"), ("torch", f"torch reference ({timing['torch']}, 2 threads)")):
    wall, rss, cpu = time_v(f"{work}/{side}.time")
    ref_ppl, ppl, dppl, kl, kl99, top1 = validation(side)
    rows.append((label, wall, cpu, rss, kl, kl99, ppl, dppl, top1))
lines = [f"| side | wall s | CPU s | peak RSS MiB | KL mean | KL p99 | PPL | ΔPPL | top-1 |",
         "|---|---|---|---|---|---|---|---|---|"]
for label, wall, cpu, rss, kl, kl99, ppl, dppl, top1 in rows:
    lines.append(f"| {label} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {kl:.6f} | {kl99:.6f} | {ppl:.4f} | "
                 f"{dppl:+.3f}% | {100 * top1:.2f}% |")
ratio = rows[0][1] / rows[1][1]
kl_m, kl_t = rows[0][4], rows[1][4]
lines += ["",
          f"- BF16 reference PPL {ref_ppl:.4f}; {nsamples} × {seqlen} calibration tokens, the same ids on both "
          f"sides (m2q's CalibrationSet.sample, seed {seed}, checked id for id; stream sha256 {sha[:12]}…)",
          f"- wall-time ratio m2q / torch: {ratio:.2f} (goal ≤ 0.5); torch's own split: Hessian passes "
          f"{timing['hessians_s']:.1f} s, GPTQ {timing['gptq_s']:.1f} s, propagation {timing['propagate_s']:.1f} s, "
          f"write {timing['write_s']:.1f} s; torch on {blas_note}",
          f"- Σ proxy loss over the {timing['linears']} linears (the loop's Σ err²/N): m2q {loss_m2q:.6g}, "
          f"torch {loss_torch:.6g}",
          f"- codes: {100 * same / total:.3f}% identical ({100 * off_by_one / total:.3f}% differ by one step); "
          f"layer 0 alone {100 * same0:.3f}%",
          f"- KL: m2q {kl_m:.6f} vs torch {kl_t:.6f}: m2q's is "
          + ("not worse" if kl_m <= kl_t else f"WORSE by {100 * (kl_m / kl_t - 1):.2f}%")]
table = "\n".join(lines)
open(f"{work}/table.md", "w").write(table + "\n")
print(table)
EOF
echo "compare: load after the runs: $(uptime)" | tee -a "$work/uptime.txt"
