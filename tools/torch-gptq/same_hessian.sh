#!/usr/bin/env bash
# The two GPTQ loops on the same problem: layer 0's linears of the fixture, W from the checkpoint and H built by the
# torch script from the calibration windows (the source layer, no true-sequential re-runs), quantized once by
# m2q's own Gptq.quantize (jshell on the CLI jar) and once by gptq_torch.gptq. Isolates the algorithm from the
# pipeline: with the same W and H, only fp32 rounding (the Cholesky factorization and the update order) separates
# them. From the repository root, after tools/torch-gptq/compare.sh (it reads target/cmp/windows-m2q.json):
#
#   tools/torch-gptq/same_hessian.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
work=target/cmp-same-h
windows=target/cmp/windows-m2q.json
[ -f "$windows" ] || { echo "same_hessian: run tools/torch-gptq/compare.sh first ($windows is missing)" >&2; exit 2; }
rm -rf "$work"
mkdir -p "$work"
blas="${M2Q_OPENBLAS_DIR:-/usr/lib/x86_64-linux-gnu/openblas-pthread}"
[ -f "$blas/libblas.so.3" ] && export LD_LIBRARY_PATH="$blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2

/usr/bin/python3 - "$work" "$windows" <<'EOF'
import json, os, sys
import numpy as np
import torch
sys.path.insert(0, "tools/torch-gptq")
import gptq_torch as g
torch.set_num_threads(2)
work, windows = sys.argv[1], sys.argv[2]
model = "fixtures/tiny-qwen2"
cfg = g.Config(json.load(open(f"{model}/config.json")))
st = g.Safetensors(f"{model}/model.safetensors")
samples = json.load(open(windows))
with torch.no_grad():
    xs = st.tensor("model.embed_tokens.weight")[torch.tensor(samples)]
    cos, sin = g.rope(cfg, len(samples[0]))
    w = g.layer_weights(st, cfg, 0)
    cases = []
    for group in g.GROUPS:
        h = g.hessian(xs, w, cfg, cos, sin, group[0], 8)
        for m in group:
            name = m.split(".")[1]
            n, k = w[m].shape
            w[m].numpy().astype("<f4").tofile(f"{work}/{name}.w")
            h.numpy().astype("<f4").tofile(f"{work}/{name}.h")
            codes, scales, loss, lam, dead = g.gptq(w[m], h)
            codes.t().contiguous().numpy().astype("<i4").tofile(f"{work}/{name}.torch.codes")
            cases.append({"name": name, "n": n, "k": k, "torch_loss": loss})
json.dump(cases, open(f"{work}/cases.json", "w"))
EOF

jdk="$(source tools/find-jdk.sh && m2q_find_jdk)"
cat >"$work/run.jsh" <<EOF
import dev.m2q.gptq.*;
import java.nio.*;
import java.nio.file.*;
float[] f32(String p, int len) throws Exception {
    float[] a = new float[len];
    ByteBuffer.wrap(Files.readAllBytes(Path.of(p))).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(a);
    return a;
}
var out = new StringBuilder();
for (String line : Files.readAllLines(Path.of("$work/cases.txt"))) {
    String[] f = line.split(" ");
    String name = f[0];
    int n = Integer.parseInt(f[1]), k = Integer.parseInt(f[2]);
    var r = Gptq.quantize(f32("$work/" + name + ".w", n * k), n, k, f32("$work/" + name + ".h", k * k),
            new GptqOptions(4, 128, true, 0.01, 128, false, false, 0));
    var bb = ByteBuffer.allocate(4 * n * k).order(ByteOrder.LITTLE_ENDIAN);
    bb.asIntBuffer().put(r.q().codes());
    Files.write(Path.of("$work/" + name + ".m2q.codes"), bb.array());
    out.append(name + " " + r.proxyLoss() + "\n");
}
Files.writeString(Path.of("$work/m2q-loss.txt"), out.toString());
/exit
EOF
/usr/bin/python3 -c "
import json; [print(c['name'], c['n'], c['k']) for c in json.load(open('$work/cases.json'))]" >"$work/cases.txt"
"$jdk/bin/jshell" --class-path cli/target/m2q.jar --add-modules jdk.incubator.vector \
  -R--add-modules=jdk.incubator.vector -R-Xmx2g "$work/run.jsh"

/usr/bin/python3 - "$work" <<'EOF'
import json, sys
import numpy as np
work = sys.argv[1]
losses = dict(l.split() for l in open(f"{work}/m2q-loss.txt"))
print("| linear | N × K | codes identical | differ by one | m2q loss | torch loss | rel. diff |")
print("|---|---|---|---|---|---|---|")
for c in json.load(open(f"{work}/cases.json")):
    a = np.fromfile(f"{work}/{c['name']}.m2q.codes", dtype="<i4")
    b = np.fromfile(f"{work}/{c['name']}.torch.codes", dtype="<i4")
    lm, lt = float(losses[c["name"]]), c["torch_loss"]
    print(f"| {c['name']} | {c['n']} × {c['k']} | {100 * (a == b).mean():.3f}% | {100 * (abs(a - b) == 1).mean():.3f}% "
          f"| {lm:.6g} | {lt:.6g} | {lm / lt - 1:+.2e} |")
EOF
