"""`kpo export` loaded by Hugging Face transformers on the GPU image: the
exported directory is an AutoModelForCausalLM whose log-probs match kpo's
(`kpo logprobs`, the fp32 CPU model) on the same weights, and with the
Qwen3 tokenizer an AutoTokenizer / GenerationConfig that agree with kpo's.
Without transformers or a GPU every case skips (exit 77, meson's SKIP),
saying which is missing.

Tolerances (relative to max(|log p|, 1), worst token):
- f32 export, float32 on the GPU with TF32 off: 1e-3. Same weights, same
  precision; only the order of float32 sums differs.
- bf16 export, bfloat16 on the GPU, against kpo's fp32 on those bf16
  weights: worst 0.1, mean 0.02. Every activation is rounded to bf16 (8
  mantissa bits) in HF's forward; a wrong tensor name, tie, RoPE or QK-norm
  moves log-probs by O(1), far beyond either bound.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

try:
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    MISSING = None if torch.cuda.is_available() else "torch sees no CUDA device"
except ImportError as e:  # the dev box: no transformers
    MISSING = f"{e.name or e} is not installed"

KPO = os.environ.get("KPO_BIN", os.path.join(os.getcwd(), "build", "kpo"))
SOURCE = Path(os.environ.get("KPO_SOURCE_ROOT", os.getcwd()))
SHARED = Path(os.environ.get("KPO_SHARED", SOURCE / ".." / "shared"))
QWEN_TOKENIZER = SHARED / "data" / "qwen_tokenizer"
ENV = {"OMP_WAIT_POLICY": "passive"}
SEQS = [[1, 5, 7, 9, 200, 13, 13, 2, 256], list(range(40, 90)), [3, 4, 5]]


@pytest.fixture(scope="module", autouse=True)
def requirements():
    if MISSING:
        pytest.exit(f"no usable GPU or transformers: {MISSING}", returncode=77)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name(0)}")


def kpo(*args, stdin=None):
    r = subprocess.run([KPO, *map(str, args)], capture_output=True, text=True, input=stdin,
                       env={**os.environ, **ENV}, timeout=600)
    assert r.returncode == 0, f"kpo {' '.join(map(str, args))}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def make_model(path, tmp, vocab=264, tie=True, **shape):
    kpo("model", "init", "--out", tmp / "preset", "--preset", "tiny")
    config = json.loads((tmp / "preset" / "config.json").read_text())
    config.update(vocab_size=vocab, tie_word_embeddings=tie, **shape)
    (tmp / "c.json").write_text(json.dumps(config))
    kpo("model", "init", "--out", path, "--config", tmp / "c.json", "--std", "0.5", "--seed", "9")
    return path


def kpo_logprobs(model_dir, tmp):
    (tmp / "seqs.jsonl").write_text("".join(json.dumps({"tokens": s}) + "\n" for s in SEQS))
    out = kpo("logprobs", "--model", model_dir, "--input", tmp / "seqs.jsonl")
    return [np.array(json.loads(line)["logprobs"]) for line in out.splitlines()]


def hf_logprobs(model_dir, dtype):
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=dtype).to("cuda").eval()
    assert type(model).__name__ == "Qwen3ForCausalLM"
    out = []
    with torch.no_grad():
        for s in SEQS:
            ids = torch.tensor([s], device="cuda")
            logits = model(ids).logits[0].float()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            out.append(logp.gather(-1, ids[0, 1:, None])[:, 0].cpu().double().numpy())
    return out


def compare(got, want):
    rel = np.concatenate([np.abs(g - w) / np.maximum(np.abs(w), 1.0) for g, w in zip(got, want)])
    return float(rel.max()), float(rel.mean())


@pytest.mark.parametrize("tie", [True, False])
def test_transformers_loads_the_export(tmp_path, tie):
    ck = make_model(tmp_path / "ck", tmp_path, tie=tie)
    kpo("export", ck, "--out", tmp_path / "f32", "--dtype", "f32", "--max-shard-size", "100KB",
        "--tokenizer", "byte")
    kpo("export", ck, "--out", tmp_path / "bf16", "--tokenizer", "byte")
    assert (tmp_path / "f32" / "model.safetensors.index.json").exists()  # sharded
    ours = kpo_logprobs(ck, tmp_path)
    worst, mean = compare(hf_logprobs(tmp_path / "f32", torch.float32), ours)
    print(f"tie={tie} f32: worst {worst:.3g}, mean {mean:.3g}")
    assert worst <= 1e-3
    # bf16: the same rounded weights on both sides (kpo reads the export).
    ours_bf16 = kpo_logprobs(tmp_path / "bf16", tmp_path)
    worst, mean = compare(hf_logprobs(tmp_path / "bf16", torch.bfloat16), ours_bf16)
    print(f"tie={tie} bf16: worst {worst:.3g}, mean {mean:.3g}")
    assert worst <= 0.1 and mean <= 0.02


@pytest.mark.skipif(not (QWEN_TOKENIZER / "vocab.json").exists(), reason="no shared tokenizer")
def test_tokenizer_and_generation_config(tmp_path):
    ck = make_model(tmp_path / "ck", tmp_path, vocab=151936, hidden_size=16,
                    intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                    num_key_value_heads=1, head_dim=8)
    out = tmp_path / "hf"
    kpo("export", ck, "--out", out, "--tokenizer", QWEN_TOKENIZER)
    tok = AutoTokenizer.from_pretrained(out)
    text = "What is 12 + 30? Answer: 42<|endoftext|>"  # one line: kpo tokenize reads lines
    ours = [int(x) for x in kpo("tokenize", "--tokenizer", out, stdin=text + "\n").split()]
    assert tok(text)["input_ids"] == ours and ours[-1] == 151643
    assert GenerationConfig.from_pretrained(out).eos_token_id == 151643
    model = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.bfloat16).to("cuda")
    ids = torch.tensor([ours], device="cuda")
    assert torch.isfinite(model(ids).logits).all()
