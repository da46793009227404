#!/usr/bin/env python3
"""PyTorch (+ transformers) reference for kpo's GPU benchmarks, on the same
shapes, so tests/gpu/run.sh can print kpo / PyTorch ratios measured in one
run on one machine.

Each measurement is one line

    REF|<what>|<value>|<unit>|<note>

where <what> is spelt exactly as the matching ROW| line of
tests/gpu/bench_gpu_model, bench_gpu_kernels and bench_gpu_logprob, so
run.sh joins them by that key (rows with no kpo twin are shown alone).
REFINFO| lines say what ran (torch, transformers, device); anything else is
log. Every line is flushed as it is made, so a run cut off by its timeout
keeps what it measured.

Sections (in this order; --sections picks some):
  gemm       bf16 products at 4096 tokens, the Qwen3-4B shapes (torch.matmul: cuBLAS)
  attention  F.scaled_dot_product_attention, causal, 32 query / 8 kv heads,
             head_dim 128, 1 x 4096 and 8 x 512 tokens, forward and backward;
             TFLOP/s with bench_gpu_kernels' formulas (forward 4 * T^2/2 * d *
             heads per sequence, backward 2.5x). Then a ragged pack of 5
             sequences, 5120+3000+1500+600+20 tokens, causal inside each: the
             strongest public variable-length attention found at run time
             (torch.nn.attention.varlen.varlen_attn, else flash-attn's
             flash_attn_varlen_func) on the packed [tokens, heads, d] layout
             with cumulative sequence lengths, else a per-sequence SDPA loop
             (which also gets a row tagged [per-sequence sdpa] when a varlen
             path ran); the note names the path
  logprob    the head 4096 x 2560 -> 151,936: fp32 log-softmax, target
             log-prob and entropy (forward), and their backward (the entropy
             term included, as bench_gpu_logprob), us/token
  train      one learner update: HF Qwen3ForCausalLM from the config with
             random weights, SDPA attention, fp32 master weights under bf16
             autocast, fp32 log-softmax of the logits, target log-probs (the
             loss) and entropies, backward, grad-norm clip, fused AdamW:
             0.6B 8 x 1024 without recomputation, 4B 1 x 5120 with gradient
             checkpointing; tokens/s and MFU (bench_gpu_model's FLOP formula)
  decode     HF generate with its KV cache, bf16 weights, sampling at T = 1,
             top_p = 1: 128-token prompts, 64 new tokens, batches 1 8 64 256,
             0.6B and 4B; tokens/s of the 63 steps after the first
             ((t(64) - t(1)) / 63: prefill excluded, as bench_gpu_model).
             Then long contexts ("... seqs ctx 4096"): 4096 random tokens per
             sequence put once into HF's DynamicCache (chunked forwards, not
             timed), 2 warm-up steps, then 16 timed single-token forwards with
             that cache, sampling at T = 1 from the last logits; tokens/s =
             b * 16 / time. Batches 1 8 64 256 at 0.6B, 1 8 64 128 at 4B, the
             largest first; a smaller batch reuses the first b sequences of
             the previous cache cut back to 4096 tokens where the cache allows
             (else a fresh prefill); a batch whose cache (2 * layers * kv heads
             * head_dim * 2 bytes * b * tokens) is over 60 % of the free GPU
             memory is skipped with a line saying so
  prefill    b prompts of len tokens into an empty KV cache in one HF forward
             (use_cache=True, SDPA, logits of the last position only where
             the model takes logits_to_keep), 16 x 1024 and 64 x 256, 0.6B and
             4B; tokens/s = b * len / time, median of 3 after a warm-up. Its
             rows "prefill <shape> <b>x<len>" match kpo's "... flash" and
             "... decode" rows (run.sh drops that suffix to join)

Without transformers the model sections fall back to a minimal Qwen3 written
here in plain PyTorch (same shapes and arithmetic, no HF code), and every
such row says so; "transformers missing" is printed once.

    python3 bench/torch_reference.py                       # the GPU run (run.sh)
    python3 bench/torch_reference.py --device cpu --tiny   # smoke check anywhere
"""
import argparse
import inspect
import math
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    import torch.utils.checkpoint
    from torch import nn
except ImportError as e:  # pragma: no cover - the caller reports it
    print(f"REFINFO|torch missing|{e}", flush=True)
    sys.exit(3)

# The published shapes (bench_shapes.h, from the Qwen3 config.json files).
SHAPES = {
    "0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                 num_attention_heads=16),
    "4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
               num_attention_heads=32),
    # --tiny: a smoke shape for any CPU.
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=1000),
}
COMMON = dict(vocab_size=151936, head_dim=128, num_key_value_heads=8, max_position_embeddings=32768,
              rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True)


def shape(name):
    s = dict(COMMON)
    s.update(SHAPES[name])
    return s


def emit(what, value, unit, note):
    print(f"REF|{what}|{value:.4g}|{unit}|{note}", flush=True)


def info(*fields):
    print("REFINFO|" + "|".join(str(f) for f in fields), flush=True)


class Timer:
    """Wall time of the enclosed work, device work included."""

    def __init__(self, device):
        self.device = device

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self):
        self.sync()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.sync()
        self.seconds = time.perf_counter() - self.t0


def time_calls(device, fn, warm, reps):
    """Mean seconds per call of fn after warm calls (CUDA events on a GPU)."""
    for _ in range(warm):
        fn()
    if device.type == "cuda":
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(reps):
            fn()
        e1.record()
        e1.synchronize()
        return e0.elapsed_time(e1) * 1e-3 / reps
    with Timer(device) as t:
        for _ in range(reps):
            fn()
    return t.seconds / reps


def randn(shape_, device, dtype, scale=1.0, requires_grad=False):
    x = (torch.randn(*shape_, device=device, dtype=torch.float32) * scale).to(dtype)
    return x.requires_grad_(requires_grad)


# ---------------------------------------------------------------- kernels

def bench_gemm(a):
    dev, dt = a.device, torch.bfloat16
    tokens = 64 if a.tiny else 4096
    shapes = [(32, 48), (48, 32)] if a.tiny else [(2560, 9728), (9728, 2560), (2560, 4096)]
    reps = 2 if a.tiny else 20
    for n_in, n_out in shapes:
        x = randn((tokens, n_in), dev, dt)
        w = randn((n_out, n_in), dev, dt)
        dy = randn((tokens, n_out), dev, dt)
        for name, fn in (("y=xW^T", lambda: F.linear(x, w)),
                         ("dx=dyW", lambda: dy @ w),
                         ("dw+=dy^Tx", lambda: dy.t() @ x)):
            s = time_calls(dev, fn, 3, reps)
            tflops = 2.0 * tokens * n_in * n_out / s / 1e12
            emit(f"gemm {name} {tokens}x{n_in}->{n_out}", tflops, "TFLOP/s",
                 "torch.matmul (cuBLAS), bf16 out" if dev.type == "cuda" else "torch.matmul, cpu")


def sdpa(q, k, v):
    """Causal GQA attention on [B, heads, S, d]; the path HF's 'sdpa' takes."""
    if hasattr(F, "scaled_dot_product_attention"):
        try:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), "sdpa gqa"
        except (TypeError, RuntimeError):  # torch < 2.5, or a forced backend without GQA
            pass
        rep = q.shape[1] // k.shape[1]
        return F.scaled_dot_product_attention(
            q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), is_causal=True), "sdpa, k/v repeated"
    rep = q.shape[1] // k.shape[1]  # torch < 2.0: the math, spelt out
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    s = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    n = q.shape[2]
    s = s.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return (s.softmax(-1) @ v.float()).to(q.dtype), "math (no sdpa in this torch)"


def bench_attention_dense(a):
    dev, dt = a.device, torch.bfloat16 if a.device.type == "cuda" else torch.float32
    heads, kv_heads, d = (4, 2, 16) if a.tiny else (32, 8, 128)
    cases = [(1, 128), (2, 64)] if a.tiny else [(1, 4096), (8, 512)]
    warm, reps = (1, 2) if a.tiny else (3, 10)
    backends = [("", None)]
    if dev.type == "cuda":
        try:
            from torch.nn.attention import SDPBackend
            backends += [(" [flash]", SDPBackend.FLASH_ATTENTION), (" [cudnn]", SDPBackend.CUDNN_ATTENTION)]
        except ImportError:
            pass
    for n_seqs, seq_len in cases:
        q = randn((n_seqs, heads, seq_len, d), dev, dt, 0.5, True)
        k = randn((n_seqs, kv_heads, seq_len, d), dev, dt, 0.5, True)
        v = randn((n_seqs, kv_heads, seq_len, d), dev, dt, 0.5, True)
        dout = randn((n_seqs, heads, seq_len, d), dev, dt)
        fwd_flops = n_seqs * 4.0 * (seq_len * seq_len / 2) * d * heads
        for tag, backend in backends:
            try:
                ctx = torch.nn.attention.sdpa_kernel(backend) if backend is not None else None
                if ctx is not None:
                    ctx.__enter__()
                try:
                    t_f = time_calls(dev, lambda: sdpa(q, k, v), warm, reps)
                    out, path = sdpa(q, k, v)
                    t_b = time_calls(dev, lambda: torch.autograd.grad(out, (q, k, v), dout,
                                                                      retain_graph=True), warm, reps)
                finally:
                    if ctx is not None:
                        ctx.__exit__(None, None, None)
            except Exception as e:  # a backend this GPU or torch lacks
                print(f"attention{tag} {n_seqs}x{seq_len}: not available: {str(e).splitlines()[0][:160]}",
                      flush=True)
                continue
            for name, s, flops in (("forward", t_f, fwd_flops), ("backward", t_b, 2.5 * fwd_flops)):
                emit(f"attention {name} {n_seqs}x{seq_len} tokens, {heads}/{kv_heads} heads, d {d}{tag}",
                     flops / s / 1e12, "TFLOP/s", f"{s * 1e3:.3f} ms per call; torch {path}"
                     f"{' (default dispatch)' if not tag else ''}")
            out = None



def varlen_paths(dev):
    """[(name, fn(q, k, v, cu, max_len))]: the public variable-length attentions
    this torch has, on the packed [tokens, heads, d] layout, causal inside each
    sequence (cu: int32 cumulative lengths), strongest first (CUDA only)."""
    paths = []
    if dev.type != "cuda":
        return paths
    try:
        from torch.nn.attention.varlen import varlen_attn
        params = inspect.signature(varlen_attn).parameters
        kw = dict(is_causal=True) if "is_causal" in params else dict(window_size=(-1, 0))
        if "enable_gqa" in params:
            kw["enable_gqa"] = True
        paths.append(("torch.nn.attention.varlen.varlen_attn",
                      lambda q, k, v, cu, n: varlen_attn(q, k, v, cu, cu, n, n, **kw)))
    except ImportError:
        pass
    try:
        import flash_attn
        from flash_attn import flash_attn_varlen_func
        paths.append((f"flash_attn_varlen_func (flash-attn {flash_attn.__version__})",
                      lambda q, k, v, cu, n: flash_attn_varlen_func(q, k, v, cu, cu, n, n, causal=True)))
    except ImportError:
        pass
    return paths


def time_fwd_bwd(dev, fwd, inputs, dout, warm, reps):
    """Seconds per forward call, and per backward of one kept forward."""
    t_f = time_calls(dev, fwd, warm, reps)
    out = fwd()
    t_b = time_calls(dev, lambda: torch.autograd.grad(out, inputs, dout, retain_graph=True), warm, reps)
    return t_f, t_b


def ragged_packed(a, lens, heads, kv_heads, d, fn, warm, reps):
    """(forward s, backward s, how) of fn on one packed batch; k/v repeated to
    the query heads when fn takes no GQA."""
    dev, dt = a.device, torch.bfloat16
    T = sum(lens)
    q = randn((T, heads, d), dev, dt, 0.5, True)
    k = randn((T, kv_heads, d), dev, dt, 0.5, True)
    v = randn((T, kv_heads, d), dev, dt, 0.5, True)
    dout = randn((T, heads, d), dev, dt)
    cu = torch.tensor([0] + list(lens), dtype=torch.int32, device=dev).cumsum(0).to(torch.int32)
    rep = heads // kv_heads
    try:
        fn(q, k, v, cu, max(lens))
        how = "packed, GQA"
        call = lambda: fn(q, k, v, cu, max(lens))  # noqa: E731
    except Exception:  # no GQA in this path: the heads spelt out
        call = lambda: fn(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), cu, max(lens))  # noqa: E731
        how = "packed, k/v repeated to the query heads"
    return time_fwd_bwd(dev, call, (q, k, v), dout, warm, reps) + (how,)


def ragged_loop(a, lens, heads, kv_heads, d, warm, reps):
    """(forward s, backward s, how) of F.scaled_dot_product_attention called
    once per sequence, each [1, heads, len, d]."""
    dev, dt = a.device, torch.bfloat16 if a.device.type == "cuda" else torch.float32
    qs = [randn((1, heads, n, d), dev, dt, 0.5, True) for n in lens]
    ks = [randn((1, kv_heads, n, d), dev, dt, 0.5, True) for n in lens]
    vs = [randn((1, kv_heads, n, d), dev, dt, 0.5, True) for n in lens]
    douts = [randn((1, heads, n, d), dev, dt) for n in lens]
    path = sdpa(qs[0], ks[0], vs[0])[1]
    fwd = lambda: [sdpa(q, k, v)[0] for q, k, v in zip(qs, ks, vs)]  # noqa: E731
    return time_fwd_bwd(dev, fwd, qs + ks + vs, douts, warm, reps) + (f"per-sequence SDPA loop (torch {path})",)


def bench_attention_ragged(a):
    lens = [96, 40, 7] if a.tiny else [5120, 3000, 1500, 600, 20]
    heads, kv_heads, d = (4, 2, 16) if a.tiny else (32, 8, 128)
    warm, reps = (1, 2) if a.tiny else (3, 10)
    fwd_flops = sum(4.0 * (n * n / 2) * d * heads for n in lens)
    key = f"ragged {'+'.join(map(str, lens))} tokens, {heads}/{kv_heads} heads, d {d}"
    tag = ""
    for name, fn in varlen_paths(a.device):
        try:
            t_f, t_b, how = ragged_packed(a, lens, heads, kv_heads, d, fn, warm, reps)
        except Exception as e:  # this torch, GPU or flash-attn build can't
            print(f"attention {key}: {name} not available: {str(e).splitlines()[0][:160]}", flush=True)
            continue
        emit_ragged(key, "", t_f, t_b, fwd_flops, f"{name}, {how}, cumulative sequence lengths")
        tag = " [per-sequence sdpa]"  # the loop below then gets its own row
        break
    t_f, t_b, how = ragged_loop(a, lens, heads, kv_heads, d, warm, reps)
    emit_ragged(key, tag, t_f, t_b, fwd_flops, how + (", no varlen attention in this torch" if not tag else ""))


def emit_ragged(key, tag, t_f, t_b, fwd_flops, how):
    for name, s, flops in (("forward", t_f, fwd_flops), ("backward", t_b, 2.5 * fwd_flops)):
        emit(f"attention {name} {key}{tag}", flops / s / 1e12, "TFLOP/s", f"{s * 1e3:.3f} ms per call; {how}")


def bench_attention(a):
    run_parts(a, bench_attention_dense, bench_attention_ragged)


def run_parts(a, *parts):
    """Each part of a section runs even when an earlier one failed; the
    section then fails with the last error."""
    error = None
    for part in parts:
        try:
            part(a)
            continue
        except Exception as e:
            error = e
            print(f"torch reference part {part.__name__} FAILED: {type(e).__name__}: {e}", flush=True)
        free(a.device)
    if error is not None:
        raise error

def logprob_terms(h, w, targets):
    """fp32 log p(target) and entropy from bf16 logits, as a PyTorch RL
    trainer computes them (the whole vocabulary at once)."""
    logits = F.linear(h, w).float()
    logp_all = logits.log_softmax(-1)
    logp = logp_all.gather(-1, targets[:, None])[:, 0]
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def bench_logprob(a):
    dev = a.device
    dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    rows, hidden, vocab = (64, 32, 1000) if a.tiny else (4096, 2560, 151936)
    warm, reps = (1, 2) if a.tiny else (1, 5)
    h = randn((rows, hidden), dev, dt, 1.0, True)
    w = randn((vocab, hidden), dev, dt, 2.0 ** -6, True)
    targets = torch.randint(0, vocab, (rows,), device=dev)

    def fwd():
        with torch.no_grad():
            return logprob_terms(h, w, targets)

    def fwd_bwd():
        logp, entropy = logprob_terms(h, w, targets)
        torch.autograd.grad(logp.sum() + entropy.sum(), (h, w))

    for name, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
        s = time_calls(dev, fn, warm, reps)
        emit(f"logprob {name} {rows}x{hidden}->{vocab}", s * 1e6 / rows, "us/token",
             f"{s * 1e3:.2f} ms per call; bf16 logits, fp32 log_softmax over the whole vocabulary")


# ---------------------------------------------------------------- models

class MiniRMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


def rotate_half(x):
    x1, x2 = x.chunk(2, -1)
    return torch.cat((-x2, x1), -1)


class MiniLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, d = c["hidden_size"], c["head_dim"]
        self.heads, self.kv_heads, self.d = c["num_attention_heads"], c["num_key_value_heads"], d
        self.q_proj = nn.Linear(h, self.heads * d, bias=False)
        self.k_proj = nn.Linear(h, self.kv_heads * d, bias=False)
        self.v_proj = nn.Linear(h, self.kv_heads * d, bias=False)
        self.o_proj = nn.Linear(self.heads * d, h, bias=False)
        self.q_norm, self.k_norm = MiniRMSNorm(d, c["rms_norm_eps"]), MiniRMSNorm(d, c["rms_norm_eps"])
        self.input_layernorm = MiniRMSNorm(h, c["rms_norm_eps"])
        self.post_attention_layernorm = MiniRMSNorm(h, c["rms_norm_eps"])
        i = c["intermediate_size"]
        self.gate_proj, self.up_proj = nn.Linear(h, i, bias=False), nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x, cos, sin, cache):
        b, n, _ = x.shape
        y = self.input_layernorm(x)
        q = self.q_norm(self.q_proj(y).view(b, n, self.heads, self.d)).transpose(1, 2)
        k = self.k_norm(self.k_proj(y).view(b, n, self.kv_heads, self.d)).transpose(1, 2)
        v = self.v_proj(y).view(b, n, self.kv_heads, self.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if cache:
                k, v = torch.cat((cache[0], k), 2), torch.cat((cache[1], v), 2)
            cache[:] = [k, v]
        if n == 1 and k.shape[2] > 1:  # a decode step attends to the whole cache
            rep = self.heads // self.kv_heads
            att = (q.float() @ k.repeat_interleave(rep, 1).float().transpose(-1, -2)) / math.sqrt(self.d)
            o = (att.softmax(-1) @ v.repeat_interleave(rep, 1).float()).to(q.dtype)
        else:
            o, _ = sdpa(q, k, v)
        x = x + self.o_proj(o.transpose(1, 2).reshape(b, n, -1))
        y = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))


class MiniQwen3(nn.Module):
    """Qwen3 in plain PyTorch (tied embeddings): used only without transformers."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(MiniLayer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = MiniRMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.recompute = False
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def rope(self, pos0, n, device, dtype):
        d = self.c["head_dim"]
        inv = 1.0 / (self.c["rope_theta"] ** (torch.arange(0, d, 2, device=device).float() / d))
        f = torch.outer(torch.arange(pos0, pos0 + n, device=device).float(), inv)
        e = torch.cat((f, f), -1)
        return e.cos().to(dtype), e.sin().to(dtype)

    def forward(self, ids, caches=None, pos0=0, head="all"):
        """Logits of every position (head "all"), of the last ("last"), or
        none ("none": the normed hidden states)."""
        x = self.embed_tokens(ids)
        cos, sin = self.rope(pos0, ids.shape[1], ids.device, x.dtype)
        for i, layer in enumerate(self.layers):
            cache = caches[i] if caches is not None else None
            if self.recompute and self.training:
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, cache, use_reentrant=False)
            else:
                x = layer(x, cos, sin, cache)
        x = self.norm(x[:, -1:] if head == "last" else x)
        return x if head == "none" else F.linear(x, self.embed_tokens.weight)


def load_transformers():
    try:
        import transformers
        from transformers import AutoModelForCausalLM, Qwen3Config
        return transformers, AutoModelForCausalLM, Qwen3Config
    except Exception as e:
        print(f"transformers missing ({type(e).__name__}: {e}); the model rows use the minimal "
              "PyTorch Qwen3 in this file instead", flush=True)
        info("transformers", "missing")
        return None


def make_model(a, name, dtype):
    """(model, description): HF Qwen3ForCausalLM with SDPA if transformers is
    there, else MiniQwen3; random weights, on a.device, parameters in dtype."""
    c = shape(name)
    tf = a.transformers
    if tf is not None:
        transformers, auto, config_cls = tf
        config = config_cls(**c, attention_bias=False, use_cache=False)
        with torch.device(a.device):  # weights made on the device: seconds, not a minute
            m = None
            for kw in ("dtype", "torch_dtype"):  # transformers 5, then 4
                try:
                    m = auto.from_config(config, attn_implementation="sdpa", **{kw: dtype})
                    break
                except TypeError:
                    continue
            if m is None:  # the plain constructor: SDPA is transformers' default
                try:
                    config._attn_implementation = "sdpa"
                except Exception:
                    pass
                m = auto.from_config(config)
        m = m.to(device=a.device, dtype=dtype)
        impl = getattr(m.config, "_attn_implementation", "?")
        return m, f"HF {type(m).__name__} (transformers {transformers.__version__}, attn {impl})"
    torch.manual_seed(0)
    m = MiniQwen3(c).to(device=a.device, dtype=dtype)
    return m, "minimal torch Qwen3 (transformers missing)"


def logits_of(model, ids):
    out = model(ids) if isinstance(model, MiniQwen3) else model(input_ids=ids, use_cache=False)
    return out if torch.is_tensor(out) else out.logits


def matmul_params(c):
    h, q, kv = c["hidden_size"], c["num_attention_heads"] * c["head_dim"], c["num_key_value_heads"] * c["head_dim"]
    return c["num_hidden_layers"] * (h * q + 2 * h * kv + q * h + 3 * h * c["intermediate_size"]) + \
        c["vocab_size"] * h


def bench_train_one(a, name, seqs, length, recompute):
    dev = a.device
    c = shape(name)
    model, desc = make_model(a, name, torch.float32)
    model.train()
    if recompute:
        if isinstance(model, MiniQwen3):
            model.recompute = True
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    fused = dev.type == "cuda"
    try:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.1, fused=fused)
    except TypeError:
        opt, fused = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.1), False
    ids = torch.randint(0, c["vocab_size"], (seqs, length), device=dev)
    targets = ids[:, 1:]
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    T = seqs * length

    def update():
        opt.zero_grad(set_to_none=True)
        with amp:
            logits = logits_of(model, ids)[:, :-1]
        logp_all = logits.float().log_softmax(-1)
        logp = logp_all.gather(-1, targets[..., None])[..., 0]
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)  # recorded, not differentiated (as kpo)
        (logp.sum() / T).backward()
        del logits, logp_all
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return entropy

    best = math.inf
    reps = 2 if a.tiny else 4
    for rep in range(reps):  # the first warms up allocations and kernels
        with Timer(dev) as t:
            update()
        print(f"torch train {name} {seqs}x{length} update {rep}: {t.seconds:.3f} s", flush=True)
        if rep > 0:
            best = min(best, t.seconds)
    mem = ""
    if dev.type == "cuda":
        mem = f"; peak {torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB"
    flops = 6.0 * matmul_params(c) * T + 6.0 * c["num_hidden_layers"] * c["num_attention_heads"] * \
        c["head_dim"] * seqs * length * length
    rc = " recompute" if recompute else ""
    emit(f"train {name} {seqs}x{length}{rc}", T / best, "tokens/s",
         f"best of {reps - 1} ({best:.3f} s); {desc}, fp32 master + bf16 autocast, "
         f"{'fused ' if fused else ''}AdamW{', gradient checkpointing' if recompute else ''}{mem}")
    emit(f"train {name} {seqs}x{length} MFU", 100.0 * flops / best / 1e12 / a.peak, "%",
         f"{flops / best / 1e12:.1f} TFLOP/s of model FLOPs vs {a.peak:.0f} peak")


def bench_decode_one(a, name, batches, prompt, new, long_batches, ctx, steps):
    dt = torch.bfloat16 if a.device.type == "cuda" else torch.float32
    model, desc = make_model(a, name, dt)
    model.eval()
    run_parts(a, lambda a: bench_decode_short(a, model, desc, name, batches, prompt, new),
              lambda a: bench_decode_long(a, model, desc, name, long_batches, ctx, steps))


def bench_decode_short(a, model, desc, name, batches, prompt, new):
    dev = a.device
    c = shape(name)

    def generate(ids, n_new):
        if isinstance(model, MiniQwen3):
            caches = [[] for _ in model.layers]
            x, pos = ids, 0
            for _ in range(n_new):
                logits = model(x, caches, pos)[:, -1].float()
                pos += x.shape[1]
                x = torch.multinomial(logits.softmax(-1), 1)
            return x
        return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                              temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=n_new,
                              min_new_tokens=n_new, use_cache=True, pad_token_id=0)

    with torch.no_grad():
        for b in batches:
            ids = torch.randint(0, c["vocab_size"], (b, prompt), device=dev)
            generate(ids, 2)  # warm-up at this batch size
            with Timer(dev) as t1:
                generate(ids, 1)
            with Timer(dev) as tn:
                generate(ids, new)
            steps = new - 1
            if tn.seconds > t1.seconds:
                rate, how = b * steps / (tn.seconds - t1.seconds), \
                    f"({tn.seconds:.3f} - {t1.seconds:.3f}) s for {steps} steps"
            else:  # too short to tell the prefill apart
                rate, how = b * new / tn.seconds, f"{tn.seconds:.3f} s for {new} tokens, prefill included"
            emit(f"decode {name} {b} seqs", rate, "tokens/s",
                 f"{desc}, {'HF generate, dynamic KV cache, ' if a.transformers else ''}"
                 f"{prompt}-token prompts, {how}")


def cache_len(cache):
    """Tokens in a KV cache: HF's Cache, or MiniQwen3's / a legacy list of (k, v)."""
    if hasattr(cache, "get_seq_length"):
        return cache.get_seq_length()
    return cache[0][0].shape[2]


def kv_bytes(c, b, tokens, dt):
    return 2 * c["num_hidden_layers"] * c["num_key_value_heads"] * c["head_dim"] * \
        torch.finfo(dt).bits // 8 * b * tokens


def prefill_cache(model, ids, chunk_tokens=32768):
    """A KV cache holding ids [b, n], filled by forwards of about chunk_tokens
    tokens without logits: HF's decoder in chunks of positions into its
    DynamicCache; MiniQwen3 in groups of sequences, joined on the batch axis."""
    b, n = ids.shape
    if isinstance(model, MiniQwen3):
        g = max(1, chunk_tokens // n)
        groups = []
        for i in range(0, b, g):
            groups.append([[] for _ in model.layers])
            model(ids[i:i + g], groups[-1], 0, head="none")
        return [[torch.cat([gr[l][j] for gr in groups]) for j in (0, 1)] for l in range(len(model.layers))]
    step, cache = max(1, min(n, chunk_tokens // b)), None
    for i in range(0, n, step):
        cache = model.base_model(input_ids=ids[:, i:i + step], past_key_values=cache,
                                 use_cache=True).past_key_values
    return cache


def shrink_cache(cache, b, ctx):
    """The first b sequences of cache, cut back to ctx tokens (in place, layer
    by layer); None where this cache can't be cut."""
    if isinstance(cache, list):  # MiniQwen3's
        for kv in cache:
            kv[:] = [t[:b, :, :ctx].contiguous() for t in kv]
        return cache
    try:
        cache.crop(ctx)
        cache.batch_select_indices(torch.arange(b, device=cache_device(cache)))
    except Exception as e:  # an HF cache without these
        print(f"KV cache not reusable ({type(e).__name__}: {e}); a fresh prefill instead", flush=True)
        return None
    return cache if cache_len(cache) == ctx else None


def cache_device(cache):
    for layer in getattr(cache, "layers", []):  # transformers >= 4.56
        if getattr(layer, "keys", None) is not None:
            return layer.keys.device
    return cache.key_cache[0].device


def decode_steps(model, x, cache, n):
    """n single-token forwards from the tokens x [b, 1] with cache, each
    sampling the next token at T = 1 from the last logits; (x, cache)."""
    for _ in range(n):
        if isinstance(model, MiniQwen3):
            logits = model(x, cache, cache_len(cache))[:, -1]
        else:
            out = model(input_ids=x, past_key_values=cache, use_cache=True)
            logits, cache = out.logits[:, -1], out.past_key_values
        x = torch.multinomial(logits.float().softmax(-1), 1)
    return x, cache


def bench_decode_long(a, model, desc, name, batches, ctx, steps):
    """Decode steps at ctx cached tokens per sequence, the largest batch first;
    held keeps the last cache (the only reference to it) for the next batch."""
    held = {}
    with torch.no_grad():
        for b in sorted(batches, reverse=True):
            try:
                decode_long_one(a, model, desc, name, b, ctx, steps, held)
                continue
            except RuntimeError as e:  # out of memory, most likely: the next batch is smaller
                msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            held.clear()
            free(a.device)
            print(f"decode {name} {b} seqs ctx {ctx}: FAILED: {msg}", flush=True)


def decode_long_one(a, model, desc, name, b, ctx, steps, held):
    dev, c, warm = a.device, shape(name), 2
    cache, made = held.pop("cache", None), held.pop("made", None)
    if cache is not None:
        cache = shrink_cache(cache, b, ctx)
    if cache is None:
        free(dev)
        need = kv_bytes(c, b, ctx + warm + steps, next(model.parameters()).dtype)
        free_bytes = torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else math.inf
        if need > 0.6 * free_bytes:
            print(f"decode {name} {b} seqs ctx {ctx}: skipped: its KV cache needs {need / 2**30:.1f} GiB, "
                  f"over 60 % of the {free_bytes / 2**30:.1f} GiB free", flush=True)
            return
        ids = torch.randint(0, c["vocab_size"], (b, ctx), device=dev)
        with Timer(dev) as tp:
            cache = prefill_cache(model, ids)
        made = (b, tp.seconds)
    how = f"a {made[0]}-sequence prefill ({made[1]:.2f} s, not timed)"
    how = how if made[0] == b else f"the first {b} sequences of {how}, cut back to {ctx} tokens"
    x = torch.randint(0, c["vocab_size"], (b, 1), device=dev)
    x, cache = decode_steps(model, x, cache, warm)
    with Timer(dev) as t:
        x, cache = decode_steps(model, x, cache, steps)
    held.update(cache=cache, made=made)
    kind = "list of k/v tensors" if isinstance(cache, list) else type(cache).__name__
    emit(f"decode {name} {b} seqs ctx {ctx}", b * steps / t.seconds, "tokens/s",
         f"{desc}, {kind}, {ctx} random tokens cached per sequence by {how}, {warm} warm-up steps, "
         f"{steps} single-token forwards in {t.seconds:.3f} s, T = 1 sampling")


def free(dev):
    import gc
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


# Each model is freed (its function returned) before the next is made.
def bench_train(a):
    cases = [("tiny", 2, 64, False), ("tiny", 1, 96, True)] if a.tiny else \
        [("0.6b", 8, 1024, False), ("4b", 1, 5120, True)]
    for case in cases:
        bench_train_one(a, *case)
        free(a.device)


def bench_decode(a):
    cases = [("tiny", [1, 2], 8, 4, [1, 2], 32, 4)] if a.tiny else \
        [("0.6b", [1, 8, 64, 256], 128, 64, [1, 8, 64, 256], 4096, 16),
         ("4b", [1, 8, 64, 256], 128, 64, [1, 8, 64, 128], 4096, 16)]
    for case in cases:
        bench_decode_one(a, *case)
        free(a.device)



def prefill_call(model):
    """(fn(ids): one forward putting ids into a new KV cache, what it keeps)."""
    if isinstance(model, MiniQwen3):
        return (lambda ids: model(ids, [[] for _ in model.layers], 0, head="last")), \
            "a new list of k/v tensors, logits of the last position"
    params = inspect.signature(model.forward).parameters
    key = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
    kw = {key: 1} if key else {}  # as generate's prefill: the last position's logits only
    return (lambda ids: model(input_ids=ids, use_cache=True, **kw)), \
        f"a new DynamicCache, logits of {'the last position' if kw else 'every position'}"


def bench_prefill_one(a, name, shapes):
    dev = a.device
    model, desc = make_model(a, name, torch.bfloat16 if dev.type == "cuda" else torch.float32)
    model.eval()
    fwd, keeps = prefill_call(model)
    reps = 2 if a.tiny else 3
    with torch.no_grad():
        for b, n in shapes:
            ids = torch.randint(0, shape(name)["vocab_size"], (b, n), device=dev)
            times = []
            for _ in range(reps + 1):  # the first warms up
                with Timer(dev) as t:
                    fwd(ids)
                times.append(t.seconds)
            s = statistics.median(times[1:])
            emit(f"prefill {name} {b}x{n}", b * n / s, "tokens/s",
                 f"median of {reps} ({s * 1e3:.1f} ms) after a warm-up; {desc}, one forward with "
                 f"use_cache=True into {keeps}")


def bench_prefill(a):
    cases = [("tiny", [(2, 16)])] if a.tiny else [(n, [(16, 1024), (64, 256)]) for n in ("0.6b", "4b")]
    for name, shapes in cases:
        bench_prefill_one(a, name, shapes)
        free(a.device)

SECTIONS = {"gemm": bench_gemm, "attention": bench_attention, "logprob": bench_logprob,
            "train": bench_train, "decode": bench_decode, "prefill": bench_prefill}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--tiny", action="store_true", help="tiny shapes: a smoke check that runs anywhere")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help="comma-separated, from: " + ", ".join(SECTIONS))
    p.add_argument("--peak", type=float, default=float(os.environ.get("KPO_PEAK_TFLOPS", 989)),
                   help="bf16 dense peak TFLOP/s for MFU (KPO_PEAK_TFLOPS, default 989)")
    a = p.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("no usable GPU: torch.cuda.is_available() is False "
              "(run with --device cpu --tiny for a smoke check)", flush=True)
        info("device", "none")
        return 2
    a.device = torch.device(a.device)
    wanted = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}")
    if a.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    a.transformers = load_transformers() if {"train", "decode", "prefill"} & set(wanted) else None
    dev_name = torch.cuda.get_device_name(a.device) if a.device.type == "cuda" else "cpu"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    info("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", cudnn,
         "transformers", a.transformers[0].__version__ if a.transformers else "missing",
         "device", dev_name)
    torch.manual_seed(0)
    status = 0
    for s in wanted:
        t0 = time.perf_counter()
        try:
            SECTIONS[s](a)
        except Exception as e:  # one section's failure must not cost the others
            status = 1
            print(f"torch reference section {s} FAILED: {type(e).__name__}: {e}", flush=True)
            free(a.device)
        print(f"torch reference section {s}: {time.perf_counter() - t0:.1f} s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
