#!/usr/bin/python3
"""An independent PyTorch implementation of the Qwen3 dense decoder, used
only by kpo's tests and benchmark as the reference.

It follows HF transformers' Qwen3 semantics (QK-norm before rotate-half
RoPE, GQA, SwiGLU, pre-norm residuals, optional tied lm_head) and computes
in float64 from the fp32 weights so that kpo's fp32 results can be judged
against something more precise than themselves.

    qwen3_reference.py make --variant NAME --out DIR [--seed S]
        writes DIR/model (config.json + model.safetensors), DIR/batch.json and
        DIR/reference.safetensors (logits, logprobs, entropy, loss, grad.*)
    qwen3_reference.py logprobs --model DIR --input FILE.jsonl
        prints one JSON line per input line, like `kpo logprobs`
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

VARIANTS = {
    # head_dim differs from hidden / heads in every variant, as in Qwen3.
    "tied_gqa1": dict(vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, head_dim=16,
                      tie_word_embeddings=True),
    "untied_gqa4": dict(vocab_size=101, hidden_size=40, intermediate_size=72,
                        num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                        head_dim=8, tie_word_embeddings=False),
    "tied_gqa2": dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                      tie_word_embeddings=True),
}
COMMON = dict(rope_theta=10000.0, rms_norm_eps=1e-6, max_position_embeddings=512,
              model_type="qwen3", architectures=["Qwen3ForCausalLM"], hidden_act="silu",
              attention_bias=False, torch_dtype="float32")
SEQ_LENS = [7, 12, 1, 5, 9]


# ---------------------------------------------------------------- safetensors
DTYPES = {"F32": (np.float32, 4), "BF16": (None, 2), "F16": (np.float16, 2)}


def write_safetensors(path, tensors):
    """tensors: dict name -> float32 numpy array, written as F32."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data, out = raw[8 + n:], {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        chunk = data[begin:end]
        if entry["dtype"] == "BF16":
            bits = np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(chunk, dtype=DTYPES[entry["dtype"]][0]).astype(np.float32)
        out[name] = array.reshape(entry["shape"])
    return out


def load_model_dir(directory):
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    tensors = read_safetensors(os.path.join(directory, "model.safetensors"))
    return config, tensors


# ---------------------------------------------------------------- the model
def tensor_names(config):
    names = ["model.embed_tokens.weight"]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        names += [p + "input_layernorm.weight", p + "self_attn.q_proj.weight",
                  p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight",
                  p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight",
                  p + "self_attn.o_proj.weight", p + "post_attention_layernorm.weight",
                  p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                  p + "mlp.down_proj.weight"]
    names.append("model.norm.weight")
    if not config["tie_word_embeddings"]:
        names.append("lm_head.weight")
    return names


def random_weights(config, seed):
    g = torch.Generator().manual_seed(seed)
    h, d, inter = config["hidden_size"], config["head_dim"], config["intermediate_size"]
    nq, nkv, V = config["num_attention_heads"], config["num_key_value_heads"], config["vocab_size"]
    shapes = {"input_layernorm": (h,), "q_proj": (nq * d, h), "k_proj": (nkv * d, h),
              "v_proj": (nkv * d, h), "q_norm": (d,), "k_norm": (d,), "o_proj": (h, nq * d),
              "post_attention_layernorm": (h,), "gate_proj": (inter, h), "up_proj": (inter, h),
              "down_proj": (h, inter), "norm": (h,), "embed_tokens": (V, h), "lm_head": (V, h)}
    out = {}
    for name in tensor_names(config):
        key = name.split(".")[-2]
        shape = shapes[key]
        if len(shape) == 1:  # norm gains near 1 but not 1, so their gradients matter
            w = 1.0 + 0.2 * torch.randn(shape, generator=g)
        elif key == "embed_tokens":
            w = torch.randn(shape, generator=g)
        else:
            w = torch.randn(shape, generator=g) / math.sqrt(shape[1])
        out[name] = w.to(torch.float32).numpy()
    return out


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_cos_sin(n, d, theta):
    # fp32 angles, as HF computes them, then widened
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    angles = torch.arange(n, dtype=torch.float32)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().double(), angles.sin().double()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def forward_sequence(config, P, tokens):
    """Logits [L, V] of one sequence; P maps names to float64 tensors."""
    h, d = config["hidden_size"], config["head_dim"]
    nq, nkv, eps = config["num_attention_heads"], config["num_key_value_heads"], config["rms_norm_eps"]
    L = len(tokens)
    x = P["model.embed_tokens.weight"][torch.tensor(tokens)]
    cos, sin = (a.to(x.dtype) for a in rope_cos_sin(L, d, config["rope_theta"]))
    mask = torch.full((L, L), float("-inf"), dtype=x.dtype).triu(1)
    for i in range(config["num_hidden_layers"]):
        p = lambda n: P[f"model.layers.{i}.{n}.weight"]
        y = rms_norm(x, p("input_layernorm"), eps)
        q = (y @ p("self_attn.q_proj").T).view(L, nq, d).transpose(0, 1)
        k = (y @ p("self_attn.k_proj").T).view(L, nkv, d).transpose(0, 1)
        v = (y @ p("self_attn.v_proj").T).view(L, nkv, d).transpose(0, 1)
        q = rms_norm(q, p("self_attn.q_norm"), eps)
        k = rms_norm(k, p("self_attn.k_norm"), eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nq // nkv, dim=0)
        v = v.repeat_interleave(nq // nkv, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d) + mask, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(L, nq * d)
        x = x + o @ p("self_attn.o_proj").T
        y = rms_norm(x, p("post_attention_layernorm"), eps)
        gate, up = y @ p("mlp.gate_proj").T, y @ p("mlp.up_proj").T
        x = x + (torch.nn.functional.silu(gate) * up) @ p("mlp.down_proj").T
    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if config["tie_word_embeddings"] else P["lm_head.weight"]
    return x @ head.T


def token_stats(logits, targets):
    """log p(target) and entropy per row."""
    logp_all = torch.log_softmax(logits, dim=-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp_all.gather(-1, targets[:, None])[:, 0], entropy


def make(args):
    config = dict(COMMON, **VARIANTS[args.variant])
    weights = random_weights(config, args.seed)
    model_dir = os.path.join(args.out, "model")
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(model_dir, "model.safetensors"), weights)

    g = torch.Generator().manual_seed(args.seed + 1)
    seqs = [torch.randint(0, config["vocab_size"], (n,), generator=g).tolist() for n in SEQ_LENS]
    tokens = [t for s in seqs for t in s]
    T = len(tokens)
    dlogp = torch.randn(T, generator=g, dtype=torch.float64)
    dent = torch.randn(T, generator=g, dtype=torch.float64)
    has_target = torch.zeros(T, dtype=torch.bool)

    P = {n: torch.tensor(w, dtype=torch.float64, requires_grad=True) for n, w in weights.items()}
    logits, logp, ent, start = [], torch.zeros(T, dtype=torch.float64), torch.zeros(T, dtype=torch.float64), 0
    for s in seqs:
        z = forward_sequence(config, P, s)
        logits.append(z)
        if len(s) > 1:
            lp, en = token_stats(z[:-1], torch.tensor(s[1:]))
            logp = logp.index_put((torch.arange(start, start + len(s) - 1),), lp)
            ent = ent.index_put((torch.arange(start, start + len(s) - 1),), en)
            has_target[start:start + len(s) - 1] = True
        start += len(s)
    dlogp[~has_target] = 0
    dent[~has_target] = 0
    loss = (dlogp * logp).sum() + (dent * ent).sum()
    loss.backward()

    dump = {"logits": torch.cat(logits).detach().numpy(), "logprobs": logp.detach().numpy(),
            "entropy": ent.detach().numpy(), "loss": loss.detach().reshape(1).numpy()}
    for n, p in P.items():
        dump["grad." + n] = p.grad.numpy()
    write_safetensors(os.path.join(args.out, "reference.safetensors"), dump)
    with open(os.path.join(args.out, "batch.json"), "w") as f:
        json.dump({"tokens": tokens, "seq_lens": SEQ_LENS, "dlogp": dlogp.tolist(),
                   "dentropy": dent.tolist()}, f)


def logprobs(args):
    config, weights = load_model_dir(args.model)
    P = {n: torch.tensor(w, dtype=torch.float64) for n, w in weights.items()}
    with open(args.input) as f, torch.no_grad():
        for line in f:
            if not line.strip():
                continue
            item = json.loads(line)
            toks, k = item["tokens"], item.get("start", 1)
            z = forward_sequence(config, P, toks)
            lp, en = token_stats(z[k - 1:-1], torch.tensor(toks[k:]))
            print(json.dumps({"logprobs": lp.tolist(), "entropies": en.tolist()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--seed", type=int, default=1234)
    lp = sub.add_parser("logprobs")
    lp.add_argument("--model", required=True)
    lp.add_argument("--input", required=True)
    args = parser.parse_args()
    {"make": make, "logprobs": logprobs}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
