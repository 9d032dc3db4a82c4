#!/usr/bin/python3
"""Independent check of an EAGLE-3 head written by m2q, with vLLM's semantics, in plain torch.

  /usr/bin/python3 tools/eagle/check_draft.py --target fixtures/tiny-qwen2 \
      --draft target/eagle/head-bf16-800 --prompts PROMPTS.txt --k 3,5 --new-tokens 64 [--json OUT.json] \
      [--m2q-report /tmp/m2q-check/validation.json]

With --m2q-report (m2q validate's validation.json on the same prompts, head and k) it compares verify
forwards, emitted tokens, and accepted/reached per draft position, and exits 1 on any difference.

Written from vLLM's `model_executor/models/llama_eagle3.py` (Eagle3 LlamaForCausalLM) and its v1 EAGLE
proposer (`v1/spec_decode/eagle.py`), without reading m2q's Java draft code. What it models:

Draft forward (one midlayer, vLLM's default `norm_before_residual = False`):
  g      = fc(cat(aux_a, aux_b, aux_c))             aux = target residual stream ENTERING layers
                                                     (2, L/2, L-3) = (2, 4, 5) here, layer order
  x      = cat(input_layernorm(embed(id)), hidden_norm(g))      embeds first, then hidden: 2H wide
  r      = g + o_proj(attn(x))                      residual is the UN-normed hidden g
  pre    = r + mlp(post_attention_layernorm(r))
  logits = lm_head(norm(pre))  over the draft vocab; draft id i -> target id i + d2t[i]
  The proposer feeds back `pre` (the second value LlamaModel.forward returns, the pre-norm stream),
  not norm(pre).
Proposer layout (chain of k drafts, batch 1): with a sequence s[0..L-1] whose last token s[L-1] the target
has not yet processed, the first draft step has one row per position i = 0..L-2 with input id s[i+1],
hidden g_i = fc(aux(i)) and RoPE position i; the last row's output gives draft 1. Step j >= 2 is one row
at position (L-2) + (j-1) with input id draft_{j-1} and hidden = that previous row's `pre`. vLLM keeps a
draft KV cache; every accepted position's K/V there comes from a first-step row built from target states,
so recomputing all rows without a cache (what this script does) gives the same attention context.
Verification: greedy; drafts accepted while they equal the target's argmax, plus one target token.

Weights as stored (BF16 -> fp32); all math in fp32. No KV cache anywhere: slow but plain.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixture"))
from qwen2 import load_model, rope_cos_sin  # noqa: E402

EOS_IDS = {2045, 2047}


# ---------------- safetensors (own reader: BF16, F32, I64, BOOL) ----------------

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[base + b:base + e]
        dt, shape = info["dtype"], info["shape"]
        if dt == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            t = torch.from_numpy(arr.reshape(shape).copy())
        elif dt == "F32":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape))
        elif dt == "I64":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<i8").astype(np.int64).reshape(shape))
        elif dt == "BOOL":
            t = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).astype(np.bool_).reshape(shape))
        else:
            raise ValueError(f"{name}: unsupported dtype {dt}")
        out[name] = t
    return out


# ---------------- target: aux hidden states + logits ----------------

@torch.no_grad()
def target_forward(model, ids, aux_layers):
    """ids: list[int]. Returns (logits [T, V], aux [T, 3H]) where aux concatenates, in layer order, the
    residual stream entering each layer in aux_layers (= output of the layer before it)."""
    cfg = model.cfg
    x_ids = torch.tensor(ids, dtype=torch.long)[None]
    T = x_ids.shape[1]
    cos, sin = rope_cos_sin(cfg, T, x_ids.device)
    mask = torch.full((T, T), float("-inf")).triu(1)
    x = model.model.embed_tokens(x_ids)
    aux = []
    for li, layer in enumerate(model.model.layers):
        if li in aux_layers:
            aux.append(x[0])
        x = layer(x, cos, sin, mask)
    logits = model.lm_head(model.model.norm(x))[0]
    return logits, torch.cat(aux, dim=-1)


# ---------------- draft ----------------

def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rot_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Draft:
    def __init__(self, ddir, embed):
        with open(os.path.join(ddir, "config.json")) as f:
            c = json.load(f)
        self.H = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.nkv = c["num_key_value_heads"]
        self.hd = c.get("head_dim") or self.H // self.nh
        self.eps = c["rms_norm_eps"]
        self.theta = c.get("rope_theta", 10000.0)
        assert c.get("num_hidden_layers", 1) == 1, "one midlayer expected"
        assert not c.get("norm_before_residual", False)
        self.w = read_safetensors(os.path.join(ddir, "model.safetensors"))
        self.embed = embed  # the target's embed_tokens weight [V, H]
        self.variant = ""
        d2t = self.w["d2t"]
        self.draft_to_target = torch.arange(d2t.shape[0], dtype=torch.long) + d2t
        if "t2d" in self.w:
            t2d = self.w["t2d"]
            assert int(t2d.sum()) == d2t.shape[0]
            assert bool(t2d[self.draft_to_target].all()), "t2d and d2t disagree"

    def fc(self, aux):
        return aux @ self.w["fc.weight"].t()

    def rope(self, x, pos):
        inv = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2, dtype=torch.int64).float() / self.hd))
        f = torch.outer(pos.float(), inv)
        emb = torch.cat((f, f), dim=-1)
        return x * emb.cos() + rot_half(x) * emb.sin()

    @torch.no_grad()
    def forward(self, ids, hidden, pos):
        """ids [T], hidden [T, H] (already fc-combined or fed back), pos [T] (strictly increasing, causal).
        Returns (pre-norm hidden [T, H] -- what the proposer feeds back, logits over the draft vocab [T, Vd])."""
        w, p = self.w, "midlayer."
        T = ids.shape[0]
        e = self.embed[ids]
        parts = [rms(e, w[p + "input_layernorm.weight"], self.eps),
                 rms(hidden, w[p + "hidden_norm.weight"], self.eps)]
        if self.variant == "hidden-first":                   # diagnostic: swapped concat order
            parts = parts[::-1]
        x = torch.cat(parts, dim=-1)
        q = (x @ w[p + "self_attn.q_proj.weight"].t()).view(T, self.nh, self.hd).transpose(0, 1)
        k = (x @ w[p + "self_attn.k_proj.weight"].t()).view(T, self.nkv, self.hd).transpose(0, 1)
        v = (x @ w[p + "self_attn.v_proj.weight"].t()).view(T, self.nkv, self.hd).transpose(0, 1)
        q, k = self.rope(q, pos), self.rope(k, pos)
        rep = self.nh // self.nkv
        k, v = k.repeat_interleave(rep, dim=0), v.repeat_interleave(rep, dim=0)
        att = (q @ k.transpose(1, 2)) / math.sqrt(self.hd)
        causal = pos[None, :] > pos[:, None]
        att = att.masked_fill(causal, float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(0, 1).reshape(T, self.nh * self.hd)
        r = hidden + y @ w[p + "self_attn.o_proj.weight"].t()
        n = rms(r, w[p + "post_attention_layernorm.weight"], self.eps)
        m = (F.silu(n @ w[p + "mlp.gate_proj.weight"].t()) * (n @ w[p + "mlp.up_proj.weight"].t())) \
            @ w[p + "mlp.down_proj.weight"].t()
        pre = r + m
        logits = rms(pre, w["norm.weight"], self.eps) @ w["lm_head.weight"].t()
        return pre, logits

    def to_target(self, draft_ids):
        return self.draft_to_target[draft_ids]


# ---------------- speculative decoding ----------------

@torch.no_grad()
def propose(draft, seq, aux, k, variant=""):
    """seq: list of L ids (last not yet seen by the target); aux [>= L-1, 3H] target aux states.
    Returns k target-vocab draft ids, laid out as vLLM's proposer does."""
    L = len(seq)
    n = L - 1
    ids = torch.tensor(seq[1:L], dtype=torch.long)           # shifted: row i carries s[i+1]
    hid = draft.fc(aux[:n])
    pos = torch.arange(n, dtype=torch.long)                  # row i at the target position i
    if variant == "pos+1":                                   # diagnostic: position of the input token
        pos = pos + 1
    out = []
    pre, logits = draft.forward(ids, hid, pos)
    tok = int(draft.to_target(logits[-1].argmax()))
    out.append(tok)
    last_pre = pre[-1] if variant != "feed-normed" else rms(pre[-1], draft.w["norm.weight"], draft.eps)
    for j in range(1, k):
        ids = torch.cat([ids, torch.tensor([tok])])
        hid = torch.cat([hid, last_pre[None]])              # feed back the PRE-norm hidden
        pos = torch.cat([pos, pos[-1:] + 1])                 # positions + 1
        pre, logits = draft.forward(ids, hid, pos)
        tok = int(draft.to_target(logits[-1].argmax()))
        out.append(tok)
        last_pre = pre[-1] if variant != "feed-normed" else rms(pre[-1], draft.w["norm.weight"], draft.eps)
    return out


@torch.no_grad()
def spec_decode(model, draft, prompt, k, new_tokens, aux_layers, variant=""):
    logits, aux = target_forward(model, prompt, aux_layers)
    seq = list(prompt) + [int(logits[-1].argmax())]          # first token from the prefill
    rounds, emitted_total, capped_total = 0, 0, 0
    reached, accepted = [0] * k, [0] * k
    trace = []
    while len(seq) - len(prompt) < new_tokens and seq[-1] not in EOS_IDS:
        drafts = propose(draft, seq, aux, k, variant)
        L = len(seq)
        logits, aux = target_forward(model, seq + drafts, aux_layers)   # verify forward
        preds = logits[L - 1:L - 1 + k + 1].argmax(-1).tolist()
        a = 0
        while a < k and drafts[a] == preds[a]:
            a += 1
        for j in range(min(a + 1, k)):
            reached[j] += 1
            if j < a:
                accepted[j] += 1
        new = drafts[:a] + [preds[a]]
        rounds += 1
        emitted_total += len(new)
        # tokens this round that fall inside the budget (the first, from the prefill, is not counted)
        capped_total += max(0, min(len(new), new_tokens - (L - len(prompt))))
        trace.append((L - len(prompt), a))
        seq += new
        for i, t in enumerate(new):                          # stop at eos like a server would
            if t in EOS_IDS:
                del seq[L + i + 1:]
                break
    gen = seq[len(prompt):]
    return gen, rounds, emitted_total, capped_total, reached, accepted, trace


@torch.no_grad()
def greedy_check(model, prompt, gen, aux_layers):
    """True when every generated token is the target's argmax given everything before it (= plain greedy
    decoding, the model being causal and run without a cache). Returns first mismatch index or -1."""
    logits, _ = target_forward(model, list(prompt) + list(gen), aux_layers)
    pred = logits[len(prompt) - 1:len(prompt) - 1 + len(gen)].argmax(-1).tolist()
    for i, (a, b) in enumerate(zip(pred, gen)):
        if a != b:
            return i
    return -1


def tokenize(m2q, model_dir, text):
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        out = subprocess.run([m2q, "tokenize", "--model", model_dir, "--text", path],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    return [int(x) for x in json.loads(out.strip().splitlines()[-1])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--draft", required=True)
    ap.add_argument("--prompts", required=True, help="one prompt per line, rendered as ChatML")
    ap.add_argument("--k", default="3,5")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--aux-layers", default=None, help="default 2,L/2,L-3 (vLLM's)")
    ap.add_argument("--m2q", default="./m2q")
    ap.add_argument("--json", default=None)
    ap.add_argument("--variant", default="", choices=["", "pos+1", "feed-normed", "hidden-first"],
                    help="diagnostic only: a deliberately non-vLLM semantic, to see that the check can tell")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--m2q-report", default=None,
                    help="m2q validate's validation.json: compare rounds, emitted, reached, accepted per k")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    model = load_model(a.target)
    nl = model.cfg.num_hidden_layers
    aux_layers = [int(x) for x in a.aux_layers.split(",")] if a.aux_layers else [2, nl // 2, nl - 3]
    report = {}
    draft = Draft(a.draft, model.model.embed_tokens.weight.detach())
    draft.variant = a.variant
    report["variant"] = a.variant

    with open(a.prompts, encoding="utf-8") as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    prompts = [tokenize(a.m2q, a.target, f"<|im_start|>user\n{ln}<|im_end|>\n<|im_start|>assistant\n")
               for ln in lines]

    report.update({"aux_layers": aux_layers, "new_tokens": a.new_tokens, "prompts": len(prompts), "k": {}})
    for k in [int(x) for x in a.k.split(",")]:
        R = E = C = 0
        reached, accepted = [0] * k, [0] * k
        per_prompt, all_greedy = [], True
        for pi, p in enumerate(prompts):
            gen, r, e, c, rc, ac, trace = spec_decode(model, draft, p, k, a.new_tokens, aux_layers, a.variant)
            gen = gen[:a.new_tokens]
            bad = greedy_check(model, p, gen, aux_layers)
            all_greedy &= bad < 0
            R += r
            E += e
            C += c
            reached = [x + y for x, y in zip(reached, rc)]
            accepted = [x + y for x, y in zip(accepted, ac)]
            per_prompt.append({"prompt": pi, "prompt_tokens": len(p), "generated": len(gen),
                               "rounds": r, "emitted": e, "accepted_per_round": [t[1] for t in trace],
                               "greedy_mismatch_at": bad})
            print(f"k={k} prompt {pi}: {len(p)} prompt ids, {len(gen)} generated, {r} verify forwards, "
                  f"{e} emitted, greedy {'OK' if bad < 0 else 'MISMATCH at ' + str(bad)}", flush=True)
        tau = C / R
        acc = [accepted[j] / reached[j] if reached[j] else float("nan") for j in range(k)]
        print(f"k={k}: tau {tau:.4f} ({C} tokens within the budget / {R} verify forwards; "
              f"{E / R:.4f} counting the last round's overshoot, {E} tokens); per-position acceptance "
              + " / ".join(f"{x:.4f}" for x in acc)
              + f"; accepted/reached " + " ".join(f"{x}/{y}" for x, y in zip(accepted, reached))
              + f"; equals greedy: {all_greedy}", flush=True)
        report["k"][k] = {"tau": tau, "emitted": C, "emitted_with_overshoot": E, "verify_forwards": R, "reached": reached,
                          "accepted": accepted, "acceptance": acc, "equals_greedy": all_greedy,
                          "per_prompt": per_prompt}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    if a.m2q_report:
        with open(a.m2q_report) as f:
            sweep = {int(e["k"]): e for e in json.load(f)["speculative"]["sweep"]}
        same = True
        for k, mine in report["k"].items():
            if k not in sweep:
                print(f"k={k}: not in the m2q report")
                same = False
                continue
            theirs = sweep[k]
            for key, their_key in (("verify_forwards", "rounds"), ("emitted", "emitted"),
                                   ("reached", "reached"), ("accepted", "accepted")):
                ok = mine[key] == theirs[their_key]
                same &= ok
                print(f"k={k} {their_key}: mine {mine[key]} m2q {theirs[their_key]} {'same' if ok else 'DIFFERENT'}")
            print(f"k={k} tau: mine {mine['tau']:.6f} m2q {theirs['tau']:.6f}")
        print("m2q agrees with vLLM semantics: " + ("yes, every count equal" if same else "NO"))
        sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
