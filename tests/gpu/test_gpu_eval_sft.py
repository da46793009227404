"""`kpo sft` and `kpo eval` with --device cuda against the same commands on
the CPU, on the tiny SFT model (docs/sft.md) and one-digit sums. Without a
GPU every case skips, saying so.

The GPU computes in bf16 and the CPU in fp32, so runs are compared within
tolerances, not bit for bit:

- sft, from the same initial weights and data order: every logged loss (a
  mean over LOG_EVERY steps) within max(10% of the CPU's, 0.05 nats); the
  loss falls as on the CPU; the checkpoint holds the GPU's trained weights
  (copied back to the host), which the CPU model scores as having learned
  the answer format.
- eval of one model (docs/sft.md's default warm start, trained on the
  CPU: about half the sums right) on 100 distinct problems: greedy
  accuracy within 10 points and the same verdict on >= 80% of the problems;
  avg@8 at T = 1, top_p = 0.7 within 10 points (the draws share their
  random streams, so most tokens match); the file's device/dtype attributes;
  with 2 GPUs, 2 ranks write the same counts as 1.
"""
import json
import os
import re
import sys

import h5py
import numpy as np
import pytest

# The kpo runner is the e2e suite's (one home).
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import kpo_run  # noqa: E402

ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
       "OMP_WAIT_POLICY": "passive"}
LOG_EVERY = 10
SFT = ["--init", "tiny", "--steps", "60", "--batch", "16", "--warmup", "5", "--log-every",
       str(LOG_EVERY), "--train-problems", "2000", "--eval", "20", "--eval-samples", "2",
       "--seed", "1"]
# kpo sft's prompt (its default) and chat template, which kpo eval must repeat.
PROMPT = ["--prompt-template", "{problem}\\n", "--chat-template", "raw"]


def run(args, ranks=0, timeout=300, check=True):
    """kpo_run.run with this file's environment (threads left to OpenMP)."""
    return kpo_run.run(args, ranks=ranks, timeout=timeout, check=check, base_env=ENV)


@pytest.fixture(scope="module")
def info():
    text = run(["info"]).stdout
    line = next((l for l in text.splitlines() if l.startswith("devices:")), "devices: ?")
    found = re.match(r"devices: (\d+) GPU", line)
    if not found or int(found.group(1)) == 0:
        reason = re.sub(r"^no usable GPU \((.*)\)$", r"\1", line[len("devices: "):])
        pytest.exit(f"no usable GPU: {reason}", returncode=77)  # meson's SKIP
    return {"gpus": int(found.group(1)), "mpi": "mpi=yes" in text, "hdf5": "hdf5=yes" in text}


def losses(stdout):
    return [float(x) for x in re.findall(r"^step \d+/\d+  loss ([0-9.]+)", stdout, re.M)]


@pytest.fixture(scope="module")
def sft_runs(tmp_path_factory, info):
    base = tmp_path_factory.mktemp("sft")
    runs = {}
    for device in ("cpu", "cuda"):
        result = run(["sft", *SFT, "--device", device, "--out", base / device])
        print(result.stdout)
        runs[device] = (base / device, result.stdout)
    return runs


def test_sft_cuda_tracks_cpu(sft_runs):
    cpu, cuda = losses(sft_runs["cpu"][1]), losses(sft_runs["cuda"][1])
    print(f"losses every {LOG_EVERY} steps: cpu {cpu}, cuda {cuda}")  # evidence to tighten with
    assert len(cpu) == len(cuda) == 6
    for step, (c, g) in enumerate(zip(cpu, cuda)):
        assert abs(g - c) <= max(0.1 * c, 0.05), (step, cpu, cuda)
    assert cuda[-1] < 0.5 * cuda[0], cuda
    stdout = sft_runs["cuda"][1]
    assert "60 steps of 16 on cuda (bf16)" in stdout
    assert re.search(r"^eval greedy: accuracy [0-9.]+% \(\d+/20 held-out", stdout, re.M)
    assert re.search(r"^eval T=1, 2 samples: accuracy", stdout, re.M)


def test_sft_cuda_checkpoint_holds_trained_weights(sft_runs, tmp_path):
    out = sft_runs["cuda"][0]
    assert json.loads((out / "kpo_model.json").read_text())["sft"]["device"] == "cuda"
    # Scored on the CPU: "What is 2 + 3?\n" then "Answer: 5" and end-of-text
    # (256). Untrained weights give about -5.5 per token (vocab 261); the
    # trained format is near certain, so the device's weights came back.
    prompt = list(b"What is 2 + 3?\n")
    tokens = prompt + list(b"Answer: 5") + [256]
    (tmp_path / "in.jsonl").write_text(json.dumps({"tokens": tokens, "start": len(prompt)}))
    logp = json.loads(run(["logprobs", "--model", out, "--input",
                           tmp_path / "in.jsonl"]).stdout)["logprobs"]
    assert all(v > -0.7 for v in logp[:8]), logp


@pytest.fixture(scope="module")
def eval_model(tmp_path_factory, info):
    out = tmp_path_factory.mktemp("warm") / "model"
    run(["sft", "--init", "tiny", "--eval", "0", "--out", out])
    return out


@pytest.fixture(scope="module")
def sums(tmp_path_factory):
    """Every one-digit sum once: 100 distinct problems, so one flipped
    answer moves an accuracy by one point."""
    path = tmp_path_factory.mktemp("bench") / "sums.jsonl"
    path.write_text("".join(json.dumps({"problem": f"What is {a} + {b}?", "answer": str(a + b)})
                            + "\n" for a in range(10) for b in range(10)))
    return path


def run_eval(model, sums, out, device, *extra, ranks=0):
    run(["eval", "--model", model, "--bench", f"sums={sums}", *PROMPT, "--max-new-tokens", 16,
         "--device", device, "--out", out, *extra], ranks=ranks)
    with h5py.File(out, "r") as f:
        g = f["bench/sums"]
        assert f.attrs["device"] == device
        assert f.attrs["dtype"] == ("bf16" if device == "cuda" else "fp32")
        assert g["problem_index"][:].tolist() == list(range(100))
        return g["correct"][:], float(g.attrs["avg_at_k"])


@pytest.fixture
def need_hdf5(info):
    if not info["hdf5"]:
        pytest.skip("kpo was built without HDF5: kpo eval cannot write its file")


def test_eval_greedy_cuda_matches_cpu(eval_model, sums, tmp_path, need_hdf5):
    greedy = ["--k", 1, "--temperature", 0]
    cpu, cpu_acc = run_eval(eval_model, sums, tmp_path / "cpu.h5", "cpu", *greedy)
    cuda, cuda_acc = run_eval(eval_model, sums, tmp_path / "cuda.h5", "cuda", *greedy)
    agree = float(np.mean(cpu == cuda))
    print(f"greedy accuracy: cpu {cpu_acc:.2f}, cuda {cuda_acc:.2f}; same verdict on "
          f"{100 * agree:.0f}% of problems")
    assert abs(cuda_acc - cpu_acc) <= 0.10
    assert agree >= 0.80


def test_eval_sampled_cuda_matches_cpu(eval_model, sums, tmp_path, info, need_hdf5):
    sampled = ["--k", 8, "--seed", 3]  # T = 1, top_p = 0.7: kpo eval's defaults
    _, cpu_avg = run_eval(eval_model, sums, tmp_path / "cpu.h5", "cpu", *sampled)
    cuda, cuda_avg = run_eval(eval_model, sums, tmp_path / "cuda.h5", "cuda", *sampled)
    print(f"avg@8: cpu {cpu_avg:.3f}, cuda {cuda_avg:.3f}")
    assert abs(cuda_avg - cpu_avg) <= 0.10
    # A chunk's responses do not depend on the rank layout; two ranks need
    # two GPUs (one each) and an MPI build.
    if info["gpus"] >= 2 and info["mpi"]:
        two, _ = run_eval(eval_model, sums, tmp_path / "cuda2.h5", "cuda", *sampled, ranks=2)
        assert np.array_equal(two, cuda)


def test_eval_new_decode_paths_match_the_default(eval_model, sums, tmp_path, need_hdf5):
    """Split-KV decoding, prompts through the flash kernel, CUDA graphs and
    refilled slots (docs/cuda.md) against the default paths, greedy: the
    same verdicts within bf16's reach, and the paths recorded. --k above
    --max-batch, so refill has slots to refill (docs/eval.md)."""
    greedy = ["--k", 4, "--temperature", 0, "--max-batch", 3]
    old, old_acc = run_eval(eval_model, sums, tmp_path / "old.h5", "cuda", *greedy)
    new, new_acc = run_eval(eval_model, sums, tmp_path / "new.h5", "cuda", *greedy,
                            "--decode-attention", "split", "--prefill-attention", "flash",
                            "--decode-graphs", "true", "--schedule", "refill")
    agree = float(np.mean(old == new))
    print(f"greedy accuracy: default paths {old_acc:.2f}, new paths {new_acc:.2f}; same "
          f"verdict on {100 * agree:.0f}% of problems")
    with h5py.File(tmp_path / "new.h5", "r") as f:
        assert (f.attrs["decode_attention"], f.attrs["prefill_attention"],
                f.attrs["decode_graphs"], f.attrs["schedule"]) == ("split", "flash", "true", "refill")
    assert abs(new_acc - old_acc) <= 0.10
    assert agree >= 0.90
