"""Shared by the eval suite's end-to-end tests: the kpo runner and the
module fixture's work folder (a tiny random Qwen3 model for the byte
tokenizer and a 7-problem benchmark, small.jsonl)."""
import json
import os
import subprocess

KPO = os.environ.get("KPO_BIN", "kpo")
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1")
# A random model never writes "Answer:", so the dapo reward's prediction is
# "[INVALID]": problems whose gold is "[INVALID]" score k of k, the rest 0.
PROBLEMS = [{"problem": f"What is {i} + {i}?", "answer": "[INVALID]" if i % 3 == 1 else str(2 * i)}
            for i in range(7)]
TINY_CONFIG = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 264,
               "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
               "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
               "tie_word_embeddings": True, "torch_dtype": "float32"}


def kpo(*args, launcher=(), check=True, timeout=None):
    """Runs kpo (under launcher, e.g. mpirun, if given); asserts success
    when check."""
    r = subprocess.run([*launcher, KPO, *map(str, args)], capture_output=True, env=MPI_ENV,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, r.stderr.decode()
    return r


def make_work(d):
    """Writes d/model (TINY_CONFIG, seed 3) and d/small.jsonl (PROBLEMS);
    returns d."""
    (d / "config.json").write_text(json.dumps(TINY_CONFIG))
    kpo("model", "init", "--config", d / "config.json", "--out", d / "model", "--seed", 3)
    with open(d / "small.jsonl", "w") as f:
        for p in PROBLEMS:
            f.write(json.dumps(p) + "\n")
    return d
