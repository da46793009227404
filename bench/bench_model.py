#!/usr/bin/python3
"""Benchmark (not a test): kpo's CPU model against the PyTorch reference on
the same checkpoint and batch, forward+backward tokens/s and decode
tokens/s, side by side with ratios, for a tiny and a ~50M-parameter config.

    /usr/bin/python3 bench/bench_model.py [--build build-model] [--threads N]

The PyTorch side runs tests/reference/qwen3_reference.py's model in fp32
(sequence by sequence, autograd backward). It has no KV cache, so its
decode recomputes the prefix every step: the decode ratio measures kpo's
cache as much as its kernels."""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import qwen3_reference as ref  # noqa: E402

CASES = [("tiny", 4, 64, 4, 16, 3), ("50m", 2, 128, 2, 8, 1)]


def torch_bench(model_dir, n_seqs, seq_len, batch, steps, iters):
    config, weights = ref.load_model_dir(model_dir)
    P = {n: torch.tensor(w, requires_grad=True) for n, w in weights.items()}
    V = config["vocab_size"]
    tokens = [(t * 7919 + 13) % V for t in range(n_seqs * seq_len)]
    seqs = [tokens[s * seq_len:(s + 1) * seq_len] for s in range(n_seqs)]
    best = float("inf")
    for it in range(iters + 1):
        t0 = time.perf_counter()
        loss = 0
        for s in seqs:
            z = ref.forward_sequence(config, P, s)
            lp, en = ref.token_stats(z[:-1], torch.tensor(s[1:]))
            loss = loss + lp.sum() + en.sum()
        loss.backward()
        dt = time.perf_counter() - t0
        if it:
            best = min(best, dt)
    train = n_seqs * seq_len / best
    with torch.no_grad():
        prefixes = [list(tokens[b * seq_len % len(tokens):][:seq_len]) for b in range(batch)]
        t0 = time.perf_counter()
        for _ in range(steps):
            for p in prefixes:
                z = ref.forward_sequence(config, P, p)
                p.append(int(z[-1].argmax()))
        decode = batch * steps / (time.perf_counter() - t0)
    return train, decode


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build-model"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    kpo, bench = os.path.join(args.build, "kpo"), os.path.join(args.build, "tests", "model",
                                                               "model_bench")
    print(f"threads {args.threads}; fp32; best of iterations; torch {torch.__version__}")
    print(f"{'config':8} {'params':>10} {'batch':>10} {'metric':22} {'kpo':>10} {'torch':>10} {'kpo/torch':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset, n_seqs, seq_len, batch, steps, iters in CASES:
            d = os.path.join(tmp, preset)
            out = subprocess.run([kpo, "model", "init", "--out", d, "--preset", preset],
                                 capture_output=True, text=True, check=True).stdout
            params = out.split(": ")[1].split()[0]
            res = subprocess.run([bench, d, str(n_seqs), str(seq_len), str(batch), str(steps),
                                  str(iters)], capture_output=True, text=True, check=True, env=env)
            ours = dict(line.split() for line in res.stdout.splitlines())
            theirs = torch_bench(d, n_seqs, seq_len, batch, steps, iters)
            shape = f"{n_seqs}x{seq_len}"
            for name, a, b in (("fwd+bwd tokens/s", float(ours["train_tokens_per_s"]), theirs[0]),
                               ("decode tokens/s", float(ours["decode_tokens_per_s"]), theirs[1])):
                print(f"{preset:8} {params:>10} {shape:>10} {name:22} {a:10.1f} {b:10.1f} {a / b:9.2f}")


if __name__ == "__main__":
    main()
