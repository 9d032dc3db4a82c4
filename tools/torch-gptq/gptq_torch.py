#!/usr/bin/python3
"""A reference GPTQ in plain torch, written from the paper (Frantar et al., 2022, Algorithm 1) and
docs/ALGORITHMS.md §2, to run beside `m2q quantize` on the same calibration ids (issue 16 item 4).

  /usr/bin/python3 tools/torch-gptq/gptq_torch.py --model fixtures/tiny-qwen2 --out target/cmp-torch \
      --stream STREAM.json --nsamples 64 --seqlen 512 --seed 0 [--samples-out SAMPLES.json]
  /usr/bin/python3 tools/torch-gptq/gptq_torch.py --model DIR --out DIR --samples SAMPLES.json
  /usr/bin/python3 tools/torch-gptq/gptq_torch.py --self-test

STREAM.json is the calibration text's token ids as one JSON array (`./m2q tokenize --model DIR --text
DIR/calibration.txt` prints it: one .txt file is one document, so m2q's calibration stream is exactly that);
the windows are then drawn as m2q's CalibrationSet.sample draws them (java.util.SplittableRandom, ported below).
SAMPLES.json is a JSON array of windows (arrays of ids), used as given.

What it does, as m2q does it by default (ALGORITHMS.md §0 and §2; GptqMethod, Gptq, GptqLoop, Rtn in m2q):
- layer-sequential: X0 = embeddings of the windows; for each decoder layer, true-sequential groups
  [q,k,v] -> [o] -> [gate,up] -> [down], the layer re-run before each group with the groups already quantized,
  and X_{l+1} = the quantized layer applied to X_l;
- H = (2/T)·Σ x xᵀ in fp32 over all T calibration tokens (shared by the linears of a group);
- dead inputs (H_kk = 0): H_kk = 1, W[:, k] = 0; damp λ·mean(diag H)·I, λ = 0.01, raised by 0.01 while the
  factorization fails (fp64 after the first failure), up to λ < 1;
- U = upper Cholesky factor of H⁻¹ (Cholesky of H, inverse from the factor, Cholesky again, upper);
- blocked loop, B = 128: per column q = RTN code with the group's scale (fp16-rounded 2·absmax/15 over the
  group's current weights, computed when the loop reaches the group's first column), err = (w − ŵ)/U_ii, the
  block's later columns updated at once, the rest after the block by one matrix product (the lazy batch);
  group 128, symmetric 4-bit, zero 8, no act-order;
- the proxy loss reported per linear is the loop's Σ err²/N (= tr((W−Q)·H_damped·(W−Q)ᵀ)/N), as m2q reports.

Output: FORMATS.md §2 (qweight/qzeros/scales/g_idx, bias F16), embeddings, norms and lm_head copied bytewise
from the source, config.json with m2q's quantization_config, quantize_config.json, the tokenizer files.
Math in fp32 on the CPU, torch.set_num_threads(--threads, default 2).
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------- safetensors

# dtype name -> (numpy dtype, bytes per element)
_DTYPES = {
    "BF16": (np.dtype("<u2"), 2),
    "F16": (np.dtype("<f2"), 2),
    "F32": (np.dtype("<f4"), 4),
    "I32": (np.dtype("<i4"), 4),
    "I64": (np.dtype("<i8"), 8),
    "U8": (np.dtype("u1"), 1),
    "BOOL": (np.dtype("u1"), 1),
}


class SafetensorsError(ValueError):
    pass


class Safetensors:
    """A safetensors file: 8-byte little-endian header length, the JSON header, then the data.

    Memory-mapped; `raw(name)` gives the tensor's bytes as stored, `tensor(name)` a torch tensor (BF16 and F16
    widened to fp32 exactly: BF16 as its 16 bits shifted left by 16 into an fp32 word)."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise SafetensorsError(f"{path}: shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise SafetensorsError(f"{path}: header length {n} runs past the end of the file ({size} bytes)")
            header = json.loads(f.read(n).decode("utf-8"))
        self.base = 8 + n
        self.data_size = size - self.base
        self.metadata = header.pop("__metadata__", {})
        self.header = header
        spans = []
        for name, info in header.items():
            dt = info.get("dtype")
            if dt not in _DTYPES:
                raise SafetensorsError(f"{path}: tensor {name} has dtype {dt}, not one of {sorted(_DTYPES)}")
            b, e = info["data_offsets"]
            count = 1
            for d in info["shape"]:
                count *= d
            if not (0 <= b <= e <= self.data_size):
                raise SafetensorsError(f"{path}: tensor {name} offsets [{b}, {e}] outside the data ({self.data_size})")
            if e - b != count * _DTYPES[dt][1]:
                raise SafetensorsError(f"{path}: tensor {name} shape {info['shape']} {dt} needs "
                                       f"{count * _DTYPES[dt][1]} bytes, offsets give {e - b}")
            spans.append((b, e, name))
        spans.sort()
        for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
            if b1 < e0:
                raise SafetensorsError(f"{path}: tensors {n0} and {n1} overlap")
        self._map = np.memmap(path, dtype=np.uint8, mode="r")

    def names(self):
        return list(self.header)

    def __contains__(self, name):
        return name in self.header

    def info(self, name):
        return self.header[name]

    def raw(self, name):
        b, e = self.header[name]["data_offsets"]
        return bytes(self._map[self.base + b:self.base + e])

    def array(self, name):
        info = self.header[name]
        b, e = info["data_offsets"]
        npdt = _DTYPES[info["dtype"]][0]
        return np.frombuffer(self._map[self.base + b:self.base + e], dtype=npdt).reshape(info["shape"])

    def tensor(self, name):
        info = self.header[name]
        a = self.array(name)
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] == "F16":
            a = a.astype(np.float32)
        return torch.from_numpy(np.array(a))


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype name, shape, bytes) in the order to store them."""
    header, off = {}, 0
    for name, dt, shape, data in tensors:
        count = 1
        for d in shape:
            count *= d
        if len(data) != count * _DTYPES[dt][1]:
            raise SafetensorsError(f"{name}: {len(data)} bytes for shape {shape} {dt}")
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
    header["__metadata__"] = metadata if metadata is not None else {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, data in tensors:
            f.write(data)
    os.replace(tmp, path)


def tensor_bytes(t, dt):
    """A torch tensor as the little-endian bytes of dtype `dt` (F16, F32, I32, I64)."""
    a = t.detach().cpu().numpy()
    return np.ascontiguousarray(a.astype(_DTYPES[dt][0])).tobytes()


# ---------------------------------------------------------------- the model (Qwen2, fp32)


class Config:
    def __init__(self, d):
        self.raw = d
        self.hidden = d["hidden_size"]
        self.inter = d["intermediate_size"]
        self.layers = d["num_hidden_layers"]
        self.heads = d["num_attention_heads"]
        self.kv_heads = d["num_key_value_heads"]
        self.head_dim = d.get("head_dim") or self.hidden // self.heads
        self.eps = d["rms_norm_eps"]
        self.theta = d.get("rope_theta", 10000.0)
        self.vocab = d["vocab_size"]
        self.tied = bool(d.get("tie_word_embeddings", False))
        if d.get("rope_scaling") not in (None, {}):
            raise SystemExit("rope_scaling is not supported by this reference (the fixture has none)")


LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
GROUPS = [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["self_attn.o_proj"],
          ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]


def layer_weights(st, cfg, i):
    p = f"model.layers.{i}."
    w = {"input_layernorm": st.tensor(p + "input_layernorm.weight"),
         "post_attention_layernorm": st.tensor(p + "post_attention_layernorm.weight")}
    for m in LINEARS:
        w[m] = st.tensor(p + m + ".weight")
        if p + m + ".bias" in st:
            w[m + ".bias"] = st.tensor(p + m + ".bias")
    return w


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope(cfg, t):
    """cos, sin [t, head_dim] for positions 0..t-1 (rotate-half convention, no scaling)."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    freqs = torch.outer(torch.arange(t, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().float(), emb.sin().float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def linear(x, w, name):
    y = x @ w[name].t()
    b = w.get(name + ".bias")
    return y if b is None else y + b


def layer_forward(x, w, cfg, cos, sin, tap=None):
    """One decoder layer on x [B, T, C]. With `tap` (a linear's name), stops and returns that linear's input."""
    b, t, _ = x.shape
    h = rms_norm(x, w["input_layernorm"], cfg.eps)
    if tap in GROUPS[0]:
        return h
    q = linear(h, w, "self_attn.q_proj").view(b, t, cfg.heads, cfg.head_dim).transpose(1, 2)
    k = linear(h, w, "self_attn.k_proj").view(b, t, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
    v = linear(h, w, "self_attn.v_proj").view(b, t, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    rep = cfg.heads // cfg.kv_heads  # GQA: kv head j serves query heads j*rep .. j*rep + rep - 1
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    mask = torch.full((t, t), float("-inf")).triu(1)
    att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(cfg.head_dim) + mask, dim=-1)
    a = (att @ v).transpose(1, 2).reshape(b, t, cfg.heads * cfg.head_dim)
    if tap == "self_attn.o_proj":
        return a
    x = x + linear(a, w, "self_attn.o_proj")
    h = rms_norm(x, w["post_attention_layernorm"], cfg.eps)
    if tap in GROUPS[2]:
        return h
    m = F.silu(linear(h, w, "mlp.gate_proj")) * linear(h, w, "mlp.up_proj")
    if tap == "mlp.down_proj":
        return m
    return x + linear(m, w, "mlp.down_proj")


def lm_head_weight(st, cfg):
    return st.tensor("model.embed_tokens.weight" if cfg.tied or "lm_head.weight" not in st else "lm_head.weight")


@torch.no_grad()
def logits(st, cfg, ids):
    """Logits [T, V] of one sequence from position 0 (the BF16 weights in fp32)."""
    emb = st.tensor("model.embed_tokens.weight")
    x = emb[torch.tensor(ids, dtype=torch.long)][None]
    cos, sin = rope(cfg, len(ids))
    for i in range(cfg.layers):
        x = layer_forward(x, layer_weights(st, cfg, i), cfg, cos, sin)
    x = rms_norm(x, st.tensor("model.norm.weight"), cfg.eps)
    return (x @ lm_head_weight(st, cfg).t())[0]


# ---------------------------------------------------------------- RTN, GPTQ

ZERO = 8
MAX_CODE = 15


def rtn_scale(absmax):
    """m2q's Rtn.scale per element: fp32 2·absmax/15 (an all-zero group: 2/15), rounded to fp16 first; a scale
    that underflows fp16 to 0 becomes the smallest fp16 subnormal 2⁻²⁴; one that overflows fp16 is an error."""
    absmax = absmax.float()
    s = torch.where(absmax == 0, torch.tensor(2.0, dtype=torch.float32) / 15.0, 2.0 * absmax / 15.0)
    h = s.half().float()
    if torch.isinf(h).any() or not torch.isfinite(absmax).all():
        raise ValueError("a group's scale overflows fp16 or its weights are not finite")
    return torch.where(h == 0, torch.tensor(2.0 ** -24, dtype=torch.float32), h)


def rtn_code(w, s):
    """clamp(round(w/s) + 8, 0, 15), w/s in fp32, round half to even."""
    return torch.clamp(torch.round(w / s) + ZERO, 0, MAX_CODE)


def rtn(w, group):
    """RTN of W [N, K]: codes [N, K] (int64), scales [K/G, N]."""
    n, k = w.shape
    g = w.view(n, k // group, group)
    s = rtn_scale(g.abs().amax(dim=2))  # [N, K/G]
    codes = rtn_code(g, s[:, :, None]).view(n, k).long()
    return codes, s.t().contiguous()


def damped_upper_inverse_factor(h, damp):
    """U, upper triangular with UᵀU = (H + λ·mean(diag H)·I)⁻¹, and the λ used. fp32 at the first λ; after a
    failure (of either Cholesky) fp64, λ raised by 0.01 each time while below 1."""
    mean = float(torch.diagonal(h).double().mean())
    lam, retries = damp, 0
    while True:
        dt = torch.float32 if retries == 0 else torch.float64
        a = h.to(dt).clone()
        a.diagonal().add_(float(np.float32(lam * mean)))
        chol, info = torch.linalg.cholesky_ex(a)
        if int(info) == 0:
            hinv = torch.cholesky_inverse(chol)
            u, info = torch.linalg.cholesky_ex(hinv, upper=True)
            if int(info) == 0 and torch.isfinite(u).all():
                return u.float(), lam, retries
        retries += 1
        lam = damp + 0.01 * retries
        if lam >= 1:
            raise ValueError(f"the Hessian is not positive definite even with damp {lam - 0.01:.2f}")


def gptq(w, h, group=128, block=128, damp=0.01):
    """GPTQ of W [N, K] (fp32, not modified) with H [K, K]: codes [N, K] int64, scales [K/G, N] fp32, the loop's
    proxy loss Σ err²/N, the λ used, the dead input count."""
    n, k = w.shape
    if k % group:
        raise ValueError(f"K = {k} is not a multiple of the group size {group}")
    w = w.clone().float()
    h = h.clone().float()
    dead = torch.nonzero(torch.diagonal(h) == 0).flatten()
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    u, lam, _ = damped_upper_inverse_factor(h, damp)
    codes = torch.zeros(n, k, dtype=torch.long)
    scales = torch.zeros(k // group, n, dtype=torch.float32)
    err_sq = torch.zeros(n, dtype=torch.float64)
    s = None
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        cnt = i2 - i1
        w1 = w[:, i1:i2].clone()
        u1 = u[i1:i2, i1:i2]
        q1 = torch.zeros(n, cnt, dtype=torch.float32)
        err1 = torch.zeros(n, cnt, dtype=torch.float32)
        for i in range(cnt):
            col = i1 + i
            if col % group == 0:
                # The group's scales over its current weights: every update issued so far (in-block ones in w1,
                # the earlier blocks' lazy updates in w).
                cur = w1[:, i:i + group] if i + group <= cnt else torch.cat((w1[:, i:], w[:, i2:col + group]), 1)
                s = rtn_scale(cur.abs().amax(dim=1))
                scales[col // group] = s
            x = w1[:, i]
            q = rtn_code(x, s)
            q1[:, i] = q
            e = (x - s * (q - ZERO)) / u1[i, i]
            err1[:, i] = e
            if i + 1 < cnt:
                w1[:, i + 1:].addr_(e, u1[i, i + 1:], alpha=-1)  # the block's later columns: w_j -= e·U_ij
        codes[:, i1:i2] = q1.long()
        err_sq += (err1.double() ** 2).sum(dim=1)
        if i2 < k:
            w[:, i2:] -= err1 @ u[i1:i2, i2:]  # the lazy batch update
    return codes, scales, float(err_sq.sum()) / n, lam, len(dead)


def dequantize(codes, scales, group):
    """ŵ [N, K] = s[k/G, n]·(q − 8) in fp32."""
    n, k = codes.shape
    s = scales.t().repeat_interleave(group, dim=1)  # [N, K]
    return s * (codes.float() - ZERO)


def proxy_loss(w, wq, h):
    """tr((W − Ŵ)·H·(W − Ŵ)ᵀ)/N."""
    d = (w - wq).double()
    return float((d @ h.double() * d).sum()) / w.shape[0]


# ---------------------------------------------------------------- GPTQ layout (FORMATS.md §2)


def to_int32(words):
    """int64 values in [0, 2³²) as int32 holding the same 32 bits."""
    return torch.from_numpy(words.numpy().astype(np.uint32).view(np.int32))


def pack_qweight(codes_kn):
    """qweight [K/8, N]: word[r, n] = Σ_j q[8r + j, n] << 4j (element 0 in the lowest nibble)."""
    k, n = codes_kn.shape
    q = codes_kn.long().view(k // 8, 8, n)
    shifts = (4 * torch.arange(8, dtype=torch.long)).view(1, 8, 1)
    return to_int32((q << shifts).sum(dim=1))


def unpack_qweight(qweight):
    w = torch.from_numpy(qweight.numpy().view(np.uint32).astype(np.int64))
    shifts = (4 * torch.arange(8, dtype=torch.long)).view(1, 8, 1)
    return ((w[:, None, :] >> shifts) & 0xF).reshape(-1, w.shape[1])


def pack_qzeros(groups, n):
    """qzeros [K/G, N/8]: the v1 convention stores zero − 1 = 7 in every nibble (0x77777777)."""
    z = torch.full((groups, n // 8, 8), ZERO - 1, dtype=torch.long)
    shifts = (4 * torch.arange(8, dtype=torch.long)).view(1, 1, 8)
    return to_int32((z << shifts).sum(dim=2))


def gptq_tensors(prefix, codes_nk, scales, group, bias):
    """The GPTQ-layout tensors of one linear, as write_safetensors entries."""
    n, k = codes_nk.shape
    codes_kn = codes_nk.t().contiguous()
    qweight = pack_qweight(codes_kn)
    if not torch.equal(unpack_qweight(qweight), codes_kn):
        raise AssertionError(prefix + ": qweight does not unpack to the codes")
    if not torch.equal(scales.half().float(), scales):
        raise AssertionError(prefix + ": scales are not exactly representable in F16")
    out = [(prefix + ".qweight", "I32", [k // 8, n], tensor_bytes(qweight, "I32")),
           (prefix + ".qzeros", "I32", [k // group, n // 8], tensor_bytes(pack_qzeros(k // group, n), "I32")),
           (prefix + ".scales", "F16", [k // group, n], tensor_bytes(scales.half(), "F16")),
           (prefix + ".g_idx", "I32", [k], tensor_bytes(torch.arange(k) // group, "I32"))]
    if bias is not None:
        out.append((prefix + ".bias", "F16", [n], tensor_bytes(bias.half(), "F16")))
    return out


# ---------------------------------------------------------------- calibration windows (m2q's CalibrationSet)

_M64 = (1 << 64) - 1


class SplittableRandom:
    """java.util.SplittableRandom(seed): the generator m2q draws its calibration windows with."""

    GOLDEN_GAMMA = 0x9E3779B97F4A7C15

    def __init__(self, seed):
        self.seed = seed & _M64
        self.gamma = self.GOLDEN_GAMMA

    def _next_seed(self):
        self.seed = (self.seed + self.gamma) & _M64
        return self.seed

    @staticmethod
    def _mix64(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        return z ^ (z >> 31)

    @staticmethod
    def _mix32(z):
        z = ((z ^ (z >> 33)) * 0x62A9D9ED799705F5) & _M64
        return (((z ^ (z >> 28)) * 0xCB24D0A5C88C35B3) & _M64) >> 32

    def next_long(self):
        """Signed 64-bit, as Java's nextLong()."""
        v = self._mix64(self._next_seed())
        return v - (1 << 64) if v >> 63 else v

    def next_int(self):
        v = self._mix32(self._next_seed())
        return v - (1 << 32) if v >> 31 else v

    def next_long_below(self, bound):
        """nextLong(bound), bound > 0: Java's bounded algorithm (mask for powers of two, else rejection)."""
        m = bound - 1
        r = self.next_long()
        if bound & m == 0:
            return r & m
        u = (r & _M64) >> 1
        while True:
            r = u % bound
            if u + m - r < (1 << 63):
                return r
            u = (self.next_long() & _M64) >> 1

    def next_int_below(self, bound):
        m = bound - 1
        r = self.next_int()
        if bound & m == 0:
            return r & m
        u = (r & 0xFFFFFFFF) >> 1
        while True:
            r = u % bound
            if u + m - r < (1 << 31):
                return r
            u = (self.next_int() & 0xFFFFFFFF) >> 1


def sample_windows(stream, nsamples, seqlen, seed):
    """CalibrationSet.sample: nsamples non-overlapping windows of seqlen ids, offsets drawn uniformly from the
    slack, sorted, window i at offset_i + i·seqlen, then shuffled (Fisher-Yates from the end) by the same
    generator."""
    slack = len(stream) - nsamples * seqlen
    if slack < 0:
        raise SystemExit(f"calibration set too small: {len(stream)} ids, {nsamples} × {seqlen} needed")
    r = SplittableRandom(seed)
    offsets = sorted(r.next_long_below(slack + 1) for _ in range(nsamples))
    starts = [o + i * seqlen for i, o in enumerate(offsets)]
    for i in range(nsamples - 1, 0, -1):
        j = r.next_int_below(i + 1)
        starts[i], starts[j] = starts[j], starts[i]
    return [stream[s:s + seqlen] for s in starts]


# ---------------------------------------------------------------- the pipeline


def hessian(xs, w, cfg, cos, sin, tap, batch, sums=torch.float32):
    """H = (2/T)·Σ x xᵀ of linear `tap`'s input over every token of xs [S, T, C]: sums in `sums` (fp32 as m2q;
    fp64 to probe how much the sums' rounding moves the result), scaled at the end, returned in fp32."""
    k = w[tap].shape[1]
    acc = torch.zeros(k, k, dtype=sums)
    tokens = 0
    for b0 in range(0, xs.shape[0], batch):
        x = layer_forward(xs[b0:b0 + batch], w, cfg, cos, sin, tap=tap).reshape(-1, k).to(sums)
        acc.addmm_(x.t(), x)
        tokens += x.shape[0]
    if sums == torch.float32:
        return acc * np.float32(2.0 / tokens)
    return (acc * (2.0 / tokens)).float()


@torch.no_grad()
def quantize_model(st, cfg, samples, group, block, damp, batch, log, sums=torch.float32):
    """Returns ({layer prefix + linear: (codes, scales)}, report rows, seconds per phase)."""
    seqlen = len(samples[0])
    ids = torch.tensor(samples, dtype=torch.long)
    xs = st.tensor("model.embed_tokens.weight")[ids]  # X0 [S, T, C]
    cos, sin = rope(cfg, seqlen)
    result, report = {}, []
    times = {"hessians": 0.0, "gptq": 0.0, "propagate": 0.0}
    for li in range(cfg.layers):
        t_layer = time.perf_counter()
        w = layer_weights(st, cfg, li)
        for group_names in GROUPS:
            t0 = time.perf_counter()
            h = hessian(xs, w, cfg, cos, sin, group_names[0], batch, sums)
            times["hessians"] += time.perf_counter() - t0
            for m in group_names:
                t0 = time.perf_counter()
                codes, scales, loss, lam, dead = gptq(w[m], h, group, block, damp)
                dt = time.perf_counter() - t0
                times["gptq"] += dt
                prefix = f"model.layers.{li}.{m}"
                result[prefix] = (codes, scales)
                w[m] = dequantize(codes, scales, group)  # later groups and the next layer see the quantized one
                if lam != damp:
                    log(f"{prefix}: damp raised from {damp} to {lam:.2f} (the Cholesky failed before)")
                report.append({"layer": li, "module": prefix, "method": "gptq-torch", "loss": loss, "damp": lam,
                               "dead_columns": dead, "time_s": dt})
        t0 = time.perf_counter()
        xs = torch.cat([layer_forward(xs[b0:b0 + batch], w, cfg, cos, sin) for b0 in range(0, xs.shape[0], batch)])
        times["propagate"] += time.perf_counter() - t0
        log(f"layer {li}: {time.perf_counter() - t_layer:.2f} s, loss "
            + " ".join(f"{r['module'].rsplit('.', 1)[1]}={r['loss']:.4g}" for r in report[-len(LINEARS):]))
    return result, report, times


def quantization_config(group, damp):
    """m2q's quantization_config for GPTQ (ReleaseFormat.GPTQ with GptqMethod's keys, default options)."""
    return {"quant_method": "gptq", "bits": 4, "group_size": group, "sym": True, "desc_act": False,
            "lm_head": False, "damp_percent": damp, "static_groups": False, "true_sequential": True,
            "checkpoint_format": "gptq", "pack_dtype": "int32",
            "meta": {"quantizer": ["m2q-tools-torch-gptq:1"], "method": "gptq"}}


COPIED = ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json",
          "vocab.json", "merges.txt", "added_tokens.json"]


def write_release(model_dir, out, st, cfg, result, report, group, damp):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    entries = []
    for name in st.names():
        info = st.info(name)
        if name.startswith("model.layers."):
            rel = name.split(".", 3)[3]
            if rel.endswith(".weight") and rel[:-len(".weight")] in LINEARS:
                prefix = name[:-len(".weight")]
                codes, scales = result[prefix]
                bias = st.tensor(prefix + ".bias") if prefix + ".bias" in st else None
                entries.extend(gptq_tensors(prefix, codes, scales, group, bias))
                continue
            if rel.endswith(".bias") and rel[:-len(".bias")] in LINEARS:
                continue  # written as F16 beside its linear
        entries.append((name, info["dtype"], info["shape"], st.raw(name)))
    entries.sort(key=lambda e: e[0])
    write_safetensors(os.path.join(out, "model.safetensors"), entries)
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    qc = quantization_config(group, damp)
    config["quantization_config"] = qc
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "quantize_config.json"), "w") as f:
        json.dump(qc, f, indent=2)
    for name in COPIED:
        if os.path.isfile(os.path.join(model_dir, name)):
            shutil.copyfile(os.path.join(model_dir, name), os.path.join(out, name))
    with open(os.path.join(out, "gptq-torch-report.jsonl"), "w") as f:
        for row in report:
            f.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------- self-test (no pytest)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Checks:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed += 1
            print(f"  FAIL  {what}")


def _raises(fn, exc):
    try:
        fn()
    except exc:
        return True
    return False


def _self_test_safetensors(c, tmp, model_dir):
    print("safetensors reader/writer")
    rng = np.random.default_rng(20261204)
    bf16_bits = rng.integers(0, 1 << 16, size=(37, 11), dtype=np.uint16)
    f16 = rng.standard_normal((5, 8)).astype(np.float16)
    f32 = rng.standard_normal((3, 4)).astype(np.float32)
    i32 = rng.integers(-(1 << 31), (1 << 31) - 1, size=(6,), dtype=np.int32)
    i64 = rng.integers(-(1 << 62), 1 << 62, size=(2, 3), dtype=np.int64)
    entries = [("a.bf16", "BF16", [37, 11], bf16_bits.astype("<u2").tobytes()),
               ("b.f16", "F16", [5, 8], f16.astype("<f2").tobytes()),
               ("c.f32", "F32", [3, 4], f32.astype("<f4").tobytes()),
               ("d.i32", "I32", [6], i32.astype("<i4").tobytes()),
               ("e.i64", "I64", [2, 3], i64.astype("<i8").tobytes())]
    path = os.path.join(tmp, "rt.safetensors")
    write_safetensors(path, entries)
    st = Safetensors(path)
    c.check(all(st.raw(n) == b for n, _, _, b in entries), "raw bytes of BF16/F16/F32/I32/I64 read back exactly")
    mine = st.tensor("a.bf16").numpy().view(np.uint32)
    c.check(np.array_equal(mine, bf16_bits.astype(np.uint32) << 16), "BF16 widens to fp32 as bits << 16")
    theirs = torch.from_numpy(bf16_bits.view(np.int16).copy()).view(torch.bfloat16).float()
    finite = torch.isfinite(theirs)
    c.check(torch.equal(st.tensor("a.bf16")[finite], theirs[finite]),
            "BF16 values equal torch's own bfloat16 -> float (every finite pattern drawn)")
    c.check(torch.equal(st.tensor("b.f16"), torch.from_numpy(f16.copy()).float()), "F16 values equal torch's")
    c.check(np.array_equal(st.array("d.i32"), i32) and np.array_equal(st.array("e.i64"), i64), "I32/I64 values")

    def bad(header, data_len):
        h = json.dumps(header).encode()
        p = os.path.join(tmp, "bad.safetensors")
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + bytes(data_len))
        return lambda: Safetensors(p)

    c.check(_raises(bad({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12), SafetensorsError),
            "overlapping tensors are refused")
    c.check(_raises(bad({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 8), SafetensorsError),
            "offsets past the data are refused")
    c.check(_raises(bad({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8), SafetensorsError),
            "a shape that disagrees with the offsets is refused")
    c.check(_raises(bad({"x": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, 1), SafetensorsError),
            "an unknown dtype is refused")
    p = os.path.join(tmp, "short.safetensors")
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", 1000) + b"{}")
    c.check(_raises(lambda: Safetensors(p), SafetensorsError), "a header length past the end is refused")

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = Config(json.load(f))
    st = Safetensors(os.path.join(model_dir, "model.safetensors"))
    hd, C, I = cfg.head_dim, cfg.hidden, cfg.inter
    want = {"model.embed_tokens.weight": [cfg.vocab, C], "model.norm.weight": [C]}
    if not cfg.tied:
        want["lm_head.weight"] = [cfg.vocab, C]
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        want.update({p + "input_layernorm.weight": [C], p + "post_attention_layernorm.weight": [C],
                     p + "self_attn.q_proj.weight": [cfg.heads * hd, C], p + "self_attn.q_proj.bias": [cfg.heads * hd],
                     p + "self_attn.k_proj.weight": [cfg.kv_heads * hd, C],
                     p + "self_attn.k_proj.bias": [cfg.kv_heads * hd],
                     p + "self_attn.v_proj.weight": [cfg.kv_heads * hd, C],
                     p + "self_attn.v_proj.bias": [cfg.kv_heads * hd],
                     p + "self_attn.o_proj.weight": [C, cfg.heads * hd],
                     p + "mlp.gate_proj.weight": [I, C], p + "mlp.up_proj.weight": [I, C],
                     p + "mlp.down_proj.weight": [C, I]})
    got = {n: st.info(n)["shape"] for n in st.names()}
    c.check(got == want, f"the fixture's {len(want)} tensors have the names and shapes config.json implies")
    c.check(all(st.info(n)["dtype"] == "BF16" for n in st.names()), "the fixture's tensors are all BF16")


def _self_test_forward(c, model_dir):
    print("Qwen2 forward against the golden logits")
    golden = os.path.join(REPO, "fixtures", "golden", "tiny-qwen2-logits.safetensors")
    if not os.path.isfile(golden):
        c.check(False, f"{golden} is missing (the fixture ships it)")
        return
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = Config(json.load(f))
    st = Safetensors(os.path.join(model_dir, "model.safetensors"))
    g = Safetensors(golden)
    k = 0
    while f"ids.{k}" in g:
        ids = [int(v) for v in g.array(f"ids.{k}")]
        want = g.tensor(f"logits.{k}")
        got = logits(st, cfg, ids)
        d = (got - want).abs()
        # Tolerance (as m2q's GoldenLogitsTest): both sides multiply the same BF16 weights in fp32 and differ only
        # in summation order and fp32 transcendentals (RoPE tables here are built in fp64, the golden's in fp32):
        # observed max |Δ| ~2e-5 on logits up to ~18; a real error (a missing bias, a wrong RoPE pairing, GQA
        # heads mapped wrongly) moves logits by 1e-2 or more.
        bound = 2e-4 + 1e-5 * want.abs()
        top2 = want.topk(2, dim=1).values
        clear = (top2[:, 0] - top2[:, 1]) > 2 * bound.max(dim=1).values
        same_argmax = bool((got.argmax(1) == want.argmax(1))[clear].all())
        c.check(bool((d <= bound).all()) and same_argmax,
                f"sequence {k} ({len(ids)} ids): max |Δ| {float(d.max()):.2e} ≤ 2e-4 + 1e-5·|logit|, argmax equal")
        k += 1
    c.check(k == 3, f"the golden file holds 3 sequences (found {k})")


def _self_test_packing(c, tmp):
    print("GPTQ layout packing")
    gen = torch.Generator().manual_seed(7)
    k, n, group = 256, 64, 128
    codes_nk = torch.randint(0, 16, (n, k), generator=gen)
    scales = (torch.rand(k // group, n, generator=gen) * 0.1 + 1e-3).half().float()
    entries = gptq_tensors("x", codes_nk, scales, group, torch.randn(n, generator=gen))
    path = os.path.join(tmp, "packed.safetensors")
    write_safetensors(path, entries)
    st = Safetensors(path)
    qweight = torch.from_numpy(np.array(st.array("x.qweight")))
    back = unpack_qweight(qweight)
    c.check(torch.equal(back, codes_nk.t()), "qweight read back from the file unpacks to the codes, bit for bit")
    word = sum(int(codes_nk[5, 8 * 3 + j]) << (4 * j) for j in range(8))
    word = word - (1 << 32) if word >= 1 << 31 else word
    c.check(int(qweight[3, 5]) == word, "word [r, n] = Σ_j q[8r + j, n] << 4j, element 0 lowest (signed int32)")
    qz = st.array("x.qzeros")
    c.check(list(qz.shape) == [k // group, n // 8] and bool((qz == 0x77777777).all()), "every qzeros word 0x77777777")
    c.check(np.array_equal(st.array("x.g_idx"), np.arange(k) // group), "g_idx = k / G")
    s_back = st.tensor("x.scales")
    c.check(torch.equal(s_back, scales), "F16 scales read back exactly")
    c.check(torch.equal(dequantize(back.t(), s_back, group), dequantize(codes_nk, scales, group)),
            "dequantizing the file gives back exactly the in-memory Ŵ")
    c.check(st.info("x.bias")["dtype"] == "F16" and st.info("x.qweight")["dtype"] == "I32"
            and st.info("x.scales")["shape"] == [k // group, n], "dtypes and shapes as FORMATS.md §2")


def _self_test_gptq(c):
    print("GPTQ properties")
    gen = torch.Generator().manual_seed(11)
    n, k, t, group = 48, 256, 1024, 128
    w = torch.randn(n, k, generator=gen) * 0.05
    codes_r, scales_r = rtn(w, group)
    codes_g, scales_g, _, _, _ = gptq(w, torch.eye(k), group, 128, 0.01)
    c.check(torch.equal(codes_g, codes_r) and torch.equal(scales_g, scales_r), "with H = I, GPTQ equals RTN exactly")
    # Correlated inputs, as a layer's activations are: GPTQ must beat RTN on the proxy loss with the undamped H.
    x = torch.randn(t, k, generator=gen) @ (torch.eye(k) + 0.3 * torch.randn(k, k, generator=gen))
    h = (x.t() @ x) * (2.0 / t)
    codes_g, scales_g, loop_loss, lam, _ = gptq(w, h, group, 128, 0.01)
    wq = dequantize(codes_g, scales_g, group)
    loss_g = proxy_loss(w, wq, h)
    loss_r = proxy_loss(w, dequantize(codes_r, scales_r, group), h)
    c.check(loss_g <= loss_r, f"proxy loss GPTQ {loss_g:.4g} ≤ RTN {loss_r:.4g} on correlated inputs")
    hd = h.clone()
    hd.diagonal().add_(float(np.float32(lam * float(torch.diagonal(h).double().mean()))))
    exact = proxy_loss(w, wq, hd)
    # Σ err² over the loop equals tr((W−Q)·H_damped·(W−Q)ᵀ)/N in exact arithmetic (W − Q = Err·U); fp32 rounding
    # of the updates and of U leaves a relative difference of ~1e-6 here; 1e-4 is the bound.
    c.check(abs(loop_loss - exact) <= 1e-4 * exact,
            f"the loop's Σ err²/N {loop_loss:.6g} equals tr((W−Q)H_damped(W−Q)ᵀ)/N {exact:.6g} (rel. 1e-4)")
    c.check(bool(((codes_g >= 0) & (codes_g <= 15)).all()), "codes in [0, 15]")
    x[:, 5] = 0
    h = (x.t() @ x) * (2.0 / t)
    codes_d, _, loss_d, _, dead = gptq(w, h, group, 128, 0.01)
    c.check(dead == 1 and bool((codes_d[:, 5] == ZERO).all()) and math.isfinite(loss_d),
            "a dead input (H_kk = 0) is zeroed: its codes are all 8, the loss finite")
    ties = rtn_code(torch.tensor([2.5, -2.5, 3.5, 0.49, 7.6, -9.0]), torch.tensor(1.0))
    c.check(ties.tolist() == [10, 6, 12, 8, 15, 0], f"codes round half to even and clamp to [0, 15]: {ties.tolist()}")
    err = (w - dequantize(codes_r, scales_r, group)).abs()
    half_step = scales_r.t().repeat_interleave(group, dim=1) / 2
    # Rounding the scale to fp16 (relative error ≤ 2⁻¹¹) can put the largest weight up to 7.5·2⁻¹¹ steps past +7.5,
    # where the clamp leaves it: the bound is (0.5 + 7.5·2⁻¹¹) steps, i.e. half a step times 1 + 15·2⁻¹¹ < 1 + 2⁻⁷.
    c.check(bool((err <= half_step * (1 + 2.0 ** -7)).all()),
            "RTN's error is at most half a step (plus the fp16 scale's rounding) everywhere")
    c.check(float(rtn_scale(torch.zeros(1))[0]) == float(np.float16(np.float32(2.0) / np.float32(15.0))),
            "an all-zero group's scale is fp16(2/15)")
    tiny = rtn_scale(torch.tensor([1e-30]))
    c.check(float(tiny[0]) == 2.0 ** -24, "a scale that underflows fp16 becomes 2⁻²⁴")


def _self_test_sampler(c):
    print("calibration windows (java.util.SplittableRandom)")
    # Known answers printed by JDK 25's java.util.SplittableRandom (new SplittableRandom(0): nextLong(),
    # nextLong(1000003), nextLong(4096), nextInt(7), nextInt(64); then new SplittableRandom(12345) folded into
    # s = s·31 + v over nextLong(4253 + 977·i), i < 1000, and nextInt(i), 1 ≤ i < 1000, in Java long arithmetic).
    r = SplittableRandom(0)
    got = [r.next_long(), r.next_long_below(1000003), r.next_long_below(4096), r.next_int_below(7),
           r.next_int_below(64)]
    c.check(got == [-2152535657050944081, 215741, 1359, 5, 58], f"seed 0 matches the JDK: {got}")
    q = SplittableRandom(12345)
    s = 0
    for i in range(1000):
        s = (s * 31 + q.next_long_below(4253 + i * 977)) & _M64
    for i in range(1, 1000):
        s = (s * 31 + q.next_int_below(i)) & _M64
    s = s - (1 << 64) if s >> 63 else s
    c.check(s == -3093216301767370930, "seed 12345, 1999 bounded draws, match the JDK")
    stream = list(range(10000))
    win = sample_windows(stream, 16, 512, 3)
    starts = sorted(w[0] for w in win)
    c.check(all(len(w) == 512 and w == stream[w[0]:w[0] + 512] for w in win)
            and all(b - a >= 512 for a, b in zip(starts, starts[1:])) and starts[-1] <= 10000 - 512,
            "windows are whole, inside the stream and never overlap")
    c.check(win == sample_windows(stream, 16, 512, 3) and win != sample_windows(stream, 16, 512, 4),
            "the same seed gives the same windows, another seed others")


def self_test(model_dir):
    c = _Checks()
    with tempfile.TemporaryDirectory() as tmp:
        _self_test_safetensors(c, tmp, model_dir)
        _self_test_forward(c, model_dir)
        _self_test_packing(c, tmp)
        _self_test_gptq(c)
        _self_test_sampler(c)
    print(f"self-test: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--self-test", action="store_true", help="check the reader, forward, packing, GPTQ; exit")
    ap.add_argument("--model", help="BF16 Qwen2 checkpoint folder (config.json, model.safetensors)")
    ap.add_argument("--out", help="output folder (replaced)")
    ap.add_argument("--stream", help="JSON array: the calibration stream's token ids (m2q tokenize)")
    ap.add_argument("--samples", help="JSON array of windows, used as given (instead of --stream)")
    ap.add_argument("--samples-out", help="write the windows drawn from --stream here (JSON)")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--group-size", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--damp", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=8, help="calibration windows per forward batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fp64-hessian", action="store_true",
                    help="accumulate H in fp64 (not m2q's way: a probe of the sums' rounding)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.self_test:
        return self_test(a.model or os.path.join(REPO, "fixtures", "tiny-qwen2"))
    if not a.model or not a.out or bool(a.stream) == bool(a.samples):
        ap.error("--model, --out and exactly one of --stream and --samples are required")
    t_start = time.perf_counter()
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = Config(json.load(f))
    if not os.path.isfile(os.path.join(a.model, "model.safetensors")):
        raise SystemExit(f"{a.model}: no model.safetensors (sharded checkpoints are not supported here)")
    st = Safetensors(os.path.join(a.model, "model.safetensors"))
    if a.samples:
        with open(a.samples) as f:
            samples = json.load(f)
    else:
        with open(a.stream) as f:
            stream = [int(v) for v in json.load(f)]
        samples = sample_windows(stream, a.nsamples, a.seqlen, a.seed)
        if a.samples_out:
            with open(a.samples_out, "w") as f:
                json.dump(samples, f)
    if not samples or len({len(s) for s in samples}) != 1:
        raise SystemExit("the calibration windows must all have the same length")
    log = lambda msg: print("gptq-torch: " + msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"{a.model}: {cfg.layers} layers, GPTQ W4 g{a.group_size} sym, damp {a.damp}, block {a.block_size}, "
        f"{len(samples)} × {len(samples[0])} calibration tokens, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads")
    t_quant = time.perf_counter()
    result, report, times = quantize_model(st, cfg, samples, a.group_size, a.block_size, a.damp, a.batch, log,
                                           torch.float64 if a.fp64_hessian else torch.float32)
    quant_s = time.perf_counter() - t_quant
    t_write = time.perf_counter()
    write_release(a.model, a.out, st, cfg, result, report, a.group_size, a.damp)
    write_s = time.perf_counter() - t_write
    total = time.perf_counter() - t_start
    summary = {"quantize_s": round(quant_s, 3), "hessians_s": round(times["hessians"], 3),
               "gptq_s": round(times["gptq"], 3), "propagate_s": round(times["propagate"], 3),
               "write_s": round(write_s, 3), "total_s": round(total, 3), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "linears": len(report),
               "loss_sum": sum(r["loss"] for r in report)}
    with open(os.path.join(a.out, "gptq-torch-timing.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"quantization wall time {quant_s:.2f} s (Hessian passes {times['hessians']:.2f} s, GPTQ "
          f"{times['gptq']:.2f} s, propagation {times['propagate']:.2f} s); written in {write_s:.2f} s; "
          f"total {total:.2f} s -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
