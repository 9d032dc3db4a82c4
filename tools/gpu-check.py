#!/usr/bin/env python3
"""Helpers of tools/gpu-check.sh (standard library only, except `torch`, which needs torch and transformers).

  gpu-check.py codes RELEASE_A RELEASE_B        4-bit codes that differ between two GPTQ releases (qweight nibbles)
  gpu-check.py torch FIXTURE GOLDEN N SEQLEN    the fixture in transformers' Qwen2ForCausalLM: logits against the
                                                golden ones m2q's forward is tested on, perplexity of the first N
                                                held-out tokens in windows of SEQLEN (as m2q validate counts them)
  gpu-check.py summary STEPS OUT DEVICE BUDGET SECONDS   gpu-check.json and gpu-check.md from the step folders
"""
import glob
import json
import math
import os
import struct
import sys


def safetensors(path):
    """{name: (dtype, shape, bytes)} of every tensor in the *.safetensors files of a folder (or one file)."""
    files = sorted(glob.glob(os.path.join(path, "*.safetensors"))) if os.path.isdir(path) else [path]
    tensors = {}
    for f in files:
        with open(f, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
            base = 8 + n
            for name, meta in header.items():
                if name == "__metadata__":
                    continue
                tensors[name] = (f, base, meta)
    return tensors


def tensor_bytes(entry):
    f, base, meta = entry
    a, b = meta["data_offsets"]
    with open(f, "rb") as fh:
        fh.seek(base + a)
        return fh.read(b - a)


NIBBLES = bytes(((x & 15) != 0) + ((x >> 4) != 0) for x in range(256))


def codes(a, b):
    ta, tb = safetensors(a), safetensors(b)
    names = sorted(n for n in ta if n.endswith(".qweight"))
    per, total, differ = {}, 0, 0
    for n in names:
        if n not in tb:
            raise SystemExit(f"{b}: no {n} (the releases differ in layout)")
        xa, xb = tensor_bytes(ta[n]), tensor_bytes(tb[n])
        if len(xa) != len(xb):
            raise SystemExit(f"{n}: {len(xa)} bytes in {a}, {len(xb)} in {b}")
        d = sum(NIBBLES[x ^ y] for x, y in zip(xa, xb))
        per[n[: -len(".qweight")]] = {"codes": 2 * len(xa), "differ": d}
        total += 2 * len(xa)
        differ += d
    if not names:
        raise SystemExit(f"{a}: no *.qweight tensors (not a GPTQ-layout release)")
    worst = max(per.items(), key=lambda kv: kv[1]["differ"] / kv[1]["codes"])
    print(json.dumps({"codes": total, "differ": differ, "fraction": differ / total, "linears": len(per),
                      "worst_linear": worst[0], "worst_fraction": worst[1]["differ"] / worst[1]["codes"],
                      "per_linear": per}, indent=1))


def torch_check(fixture, golden, n, seqlen):
    import torch
    from transformers import Qwen2ForCausalLM

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = Qwen2ForCausalLM.from_pretrained(fixture, torch_dtype=torch.bfloat16).to(dev).eval()
    # fp32 math on the bf16 weights, as m2q's forward (and the golden logits) do
    model = model.float()
    out = {"device": dev, "torch": torch.__version__}
    import transformers
    out["transformers"] = transformers.__version__
    g = safetensors(os.path.join(golden, "tiny-qwen2-logits.safetensors"))
    worst, worst_rel, argmax_same, positions = 0.0, 0.0, 0, 0
    s = 0
    with torch.no_grad():
        while f"ids.{s}" in g:
            ids = torch.frombuffer(bytearray(tensor_bytes(g[f"ids.{s}"])), dtype=torch.int64)
            want = torch.frombuffer(bytearray(tensor_bytes(g[f"logits.{s}"])), dtype=torch.float32)
            got = model(ids.view(1, -1).to(dev)).logits[0].float().cpu()
            want = want.view(got.shape)
            d = (got - want).abs().max().item()
            worst = max(worst, d)
            worst_rel = max(worst_rel, d / want.abs().max().item())
            argmax_same += int((got.argmax(-1) == want.argmax(-1)).sum())
            positions += got.shape[0]
            s += 1
        out.update({"golden_sequences": s, "max_abs_diff_vs_golden": worst, "max_rel_diff_vs_golden": worst_rel,
                    "argmax_agree": argmax_same, "positions": positions})
        ids = json.load(open(os.path.join(golden, "tiny-qwen2-heldout-ids.json")))[:n]
        nll, predicted = 0.0, 0
        for start in range(0, len(ids) - 1, seqlen):
            w = torch.tensor(ids[start:start + seqlen], device=dev).view(1, -1)
            if w.shape[1] < 2:
                break
            logits = model(w).logits[0].float()
            lp = torch.log_softmax(logits[:-1], -1)
            nll -= lp.gather(1, w[0, 1:].view(-1, 1)).sum().item()
            predicted += w.shape[1] - 1
        out.update({"tokens": len(ids), "seqlen": seqlen, "predicted": predicted, "nll": nll,
                    "ppl": math.exp(nll / predicted)})
    print(json.dumps(out, indent=1))


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def num(path):
    try:
        with open(path) as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def find(obj, key):
    """The first value under KEY anywhere in a JSON tree (the m2q reports nest their figures)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for v in obj:
            r = find(v, key)
            if r is not None:
                return r
    return None


def weight_bytes(model_dir):
    """Bytes a decode step reads: every tensor but the embedding table (one row of it is read per token)."""
    t = safetensors(model_dir)
    return sum(m["data_offsets"][1] - m["data_offsets"][0] for n, (_, _, m) in t.items()
               if not n.endswith("embed_tokens.weight"))


def figures(name, d, work):
    f = {}
    if name.startswith("1-"):
        q = open(os.path.join(d, "query.csv")).read().strip() if os.path.exists(os.path.join(d, "query.csv")) else ""
        if q:
            keys = ["name", "driver", "memory", "compute_capability", "max_sm_clock", "max_mem_clock"]
            f.update(dict(zip(keys, [x.strip() for x in q.splitlines()[0].split(",")])))
        txt = os.path.join(d, "nvidia-smi.txt")
        if os.path.exists(txt):
            for line in open(txt):
                if "CUDA Version" in line:
                    f["cuda_version"] = line.split("CUDA Version:")[1].split("|")[0].strip()
    elif name.startswith("2") and glob.glob(os.path.join(d, "reports", "*.xml")):
        tests = failures = errors = skipped = 0
        for x in glob.glob(os.path.join(d, "reports", "*.xml")):
            import xml.etree.ElementTree as ET
            for s in ET.parse(x).getroot().iter("testsuite"):
                tests += int(s.get("tests", 0))
                failures += int(s.get("failures", 0))
                errors += int(s.get("errors", 0))
                skipped += int(s.get("skipped", 0))
        f.update({"tests": tests, "failures": failures, "errors": errors, "skipped": skipped,
                  "seconds": num(os.path.join(d, "tests.seconds"))})
    elif name.startswith("3-"):
        f["bench"] = load(os.path.join(d, "bench.json"))
    elif name.startswith("4-"):
        c = load(os.path.join(d, "codes.json")) or {}
        f["codes"] = {k: c.get(k) for k in ("codes", "differ", "fraction", "worst_linear", "worst_fraction")}
        for side in ("cpu", "cuda"):
            v = load(os.path.join(d, f"validate-{side}.json"))
            f[f"quantize_{side}_s"] = num(os.path.join(d, f"quantize-{side}.seconds"))
            acc = (v or {}).get("accuracy") or {}
            cand = acc.get("candidate") or {}
            if cand:
                f[f"validate_{side}"] = {"ppl_ref": acc.get("reference_ppl"), "ppl": cand.get("ppl"),
                                         "dppl_pct": cand.get("ppl_increase_percent"), "kl_mean": cand.get("kl_mean"),
                                         "kl_p99": cand.get("kl_p99"), "top1": cand.get("top1_agreement")}
    elif name.startswith("5-"):
        t = open(os.path.join(d, "tokens")).read().split() if os.path.exists(os.path.join(d, "tokens")) else None
        s = num(os.path.join(d, "quantize.seconds"))
        f["generate_s"] = num(os.path.join(d, "generate.seconds"))
        report = os.path.join(work, "synth-gptq", "m2q-report.jsonl")
        gptq = None
        if os.path.exists(report):
            rows = [json.loads(x) for x in open(report) if x.strip()]
            gptq = sum(r.get("time_s", 0) for r in rows if "module" in r)
            f["gptq_s"] = gptq  # the modules' own time_s: GPTQ's solve, without the layer forwards
        layer = None
        err = os.path.join(d, "stderr")
        if os.path.exists(err):
            for line in open(err, errors="replace"):
                if line.startswith("layer ") and " done in " in line:  # ConsoleProgress: the layer's own seconds
                    layer = float(line.split(" done in ")[1].split()[0])
        if t:
            ns, sl = int(t[0]), int(t[1])
            f.update({"nsamples": ns, "seqlen": sl, "quantize_wall_s": s, "layer_s": layer})
            if layer is not None:
                scale = (128 * 2048) / (ns * sl)
                f["scaled_to_128x2048"] = scale != 1
                # The layer's forwards (and the Hessians built in them) grow with the tokens; GPTQ's solve does
                # not. A run at fewer tokens is scaled that way, which is a linear estimate, not a measurement.
                fixed = min(gptq, layer) if gptq is not None else 0.0
                per = fixed + (layer - fixed) * scale
                f["per_layer_s_128x2048"] = per
                f["projected_64_layers_min"] = per * 64 / 60
    elif name.startswith("6-"):
        syn = os.path.join(work, "synth")
        for kind, model in (("bf16", syn), ("w4a16", os.path.join(work, "synth-gptq"))):
            b = load(os.path.join(d, f"{kind}.json"))
            tps = find(b, "decode_tokens_per_s") if b else None
            entry = {"decode_tokens_per_s": tps}
            if os.path.isdir(model):
                wb = weight_bytes(model)
                entry["weight_bytes_per_token"] = wb
                if tps:
                    entry["GB_per_s"] = wb * tps / 1e9
            f[kind] = entry
        if f["bf16"].get("decode_tokens_per_s") and f["w4a16"].get("decode_tokens_per_s"):
            f["w4a16_over_bf16"] = f["w4a16"]["decode_tokens_per_s"] / f["bf16"]["decode_tokens_per_s"]
        if os.path.exists(os.path.join(d, "w4-source")):
            f["w4_source"] = "RTN (step 5 left no GPTQ release)"
    elif name.startswith("7-"):
        f["train_s"] = num(os.path.join(d, "train.seconds"))
        spec = (load(os.path.join(d, "spec.json")) or {}).get("speculative") or {}
        f["plain_tokens_per_s"] = (spec.get("plain") or {}).get("tokens_per_second")
        for row in spec.get("sweep") or []:
            f[f"k{row['k']}"] = {key: row.get(key) for key in ("tau", "predicted_tau", "tokens_per_second",
                                                                 "speedup", "predicted_speedup")}
        f["spec"] = spec
    elif name.startswith("8-"):
        t = load(os.path.join(d, "torch.json"))
        m = load(os.path.join(d, "m2q.json"))
        f["transformers"] = t
        f["m2q"] = m
        if t and m and m.get("ppl"):
            f["ppl_transformers"] = t["ppl"]
            f["ppl_m2q"] = m["ppl"]
            f["ppl_rel_diff"] = abs(t["ppl"] - m["ppl"]) / m["ppl"]
            f["same_tokens"] = (t["tokens"], t["predicted"]) == (m.get("tokens"), m.get("predicted"))
    return f


def short(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {short(x)}" if isinstance(x, dict) else f"{k} {short(x)}"
                         for k, x in v.items() if not isinstance(x, list) and x is not None)
    return str(v)


def summary(steps, out, device, budget, seconds):
    work = os.path.dirname(steps.rstrip("/"))
    result = {"device": device, "budget_s": int(budget), "seconds": int(seconds), "steps": {}}
    rows = []
    for d in sorted(glob.glob(os.path.join(steps, "*/"))):
        name = os.path.basename(d.rstrip("/"))
        st = open(os.path.join(d, "status")).read().split("\n", 1) if os.path.exists(os.path.join(d, "status")) \
            else ["failed", "no status written"]
        status, why = st[0].strip(), (st[1].strip() if len(st) > 1 else "")
        try:
            fig = figures(name, d, work)
        except Exception as e:  # a figure that cannot be read must not lose the others
            fig = {"summary_error": f"{type(e).__name__}: {e}"}
        entry = {"status": status, "seconds": num(os.path.join(d, "seconds")), "figures": fig}
        if why:
            entry["why"] = why
        result["steps"][name] = entry
        shown = {k: v for k, v in fig.items() if k not in ("bench", "spec", "transformers", "m2q")}
        note = why.replace("\n", " ⏎ ").replace("|", "/")[:300]
        rows.append(f"| {name} | {status} | {entry['seconds']} | {short(shown) if shown else ''}"
                    f"{(' — ' + note) if note else ''} |")
    with open(os.path.join(out, "gpu-check.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(out, "gpu-check.md"), "w") as f:
        f.write(f"# m2q gpu-check ({device}, {seconds} s of a {budget} s budget)\n\n")
        f.write("| step | status | s | figures |\n| --- | --- | --- | --- |\n")
        f.write("\n".join(rows) + "\n\nThe kernels suite, speculative decoding and the transformers run are "
                "in full in gpu-check.json.\n")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "codes":
        codes(sys.argv[2], sys.argv[3])
    elif cmd == "torch":
        torch_check(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "summary":
        summary(*sys.argv[2:7])
    else:
        sys.exit(__doc__)
