"""kpo sft on a tiny setting: the loss falls, the output directory is a
checkpoint the other commands load, runs are reproducible, the tokenizer is
found again from kpo_model.json, bad options fail with one clear line, and
--device cuda fails the same way on a machine without a GPU."""
import json
import os
import re
import subprocess

import pytest

KPO = os.environ.get("KPO_BIN", os.path.join(os.getcwd(), "build", "kpo"))
# Fixed threads (determinism is per thread count) and passive OpenMP waits,
# which keep a loaded 2-core box from stalling on spinning threads.
ENV = dict(os.environ, OMP_NUM_THREADS="2", OMP_WAIT_POLICY="passive")
SMALL = ["--init", "tiny", "--steps", "40", "--batch", "8", "--log-every", "10",
         "--train-problems", "500", "--eval", "10", "--eval-samples", "2", "--lr", "3e-3",
         "--warmup", "5", "--difficulty", "1"]


def kpo(*args, check=True):
    result = subprocess.run([KPO, *map(str, args)], capture_output=True, text=True,
                            timeout=120, env=ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"kpo {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft") / "model"
    return out, kpo("sft", *SMALL, "--out", out).stdout


def losses(stdout):
    return [float(x) for x in re.findall(r"^step \d+/\d+  loss ([0-9.]+)", stdout, re.M)]


def test_loss_decreases_and_eval_printed(trained):
    _, stdout = trained
    values = losses(stdout)
    assert len(values) == 4
    assert values[-1] < 0.5 * values[0], values
    assert re.search(r"^eval greedy: accuracy [0-9.]+% \(\d+/10 held-out", stdout, re.M)
    assert re.search(r"^eval T=1, 2 samples: accuracy", stdout, re.M)


def test_output_loads_with_other_commands(trained, tmp_path):
    out, _ = trained
    meta = json.loads((out / "kpo_model.json").read_text())
    assert meta["tokenizer"] == "byte"
    assert meta["chat_template"] == "raw"
    assert meta["reward"] == "dapo"
    assert meta["prompt_template"] == "{problem}\\n"
    assert meta["sft"]["steps"] == 40
    assert meta["sft"]["device"] == "cpu"
    listing = kpo("model", "list", out).stdout
    assert "vocab 261" in listing and "tied" in listing
    # "What is 2 + 3?\n" then "Answer: 5" and end-of-text (id 256).
    prompt = list(b"What is 2 + 3?\n")
    tokens = prompt + list(b"Answer: 5") + [256]
    line = json.dumps({"tokens": tokens, "start": len(prompt)})
    (tmp_path / "in.jsonl").write_text(line + "\n")
    result = json.loads(kpo("logprobs", "--model", out, "--input", tmp_path / "in.jsonl").stdout)
    logp = result["logprobs"]
    assert len(logp) == len(tokens) - len(prompt)
    # The trained format is near certain: "Answer: " after the prompt.
    assert all(v > -0.7 for v in logp[:8]), logp


def test_deterministic_and_resumes_from_model_dir(trained, tmp_path):
    out, stdout = trained
    again = tmp_path / "again"
    assert losses(kpo("sft", *SMALL, "--out", again).stdout) == losses(stdout)
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    # --model takes the tokenizer from kpo_model.json.
    more = kpo("sft", "--model", out, "--out", tmp_path / "more", "--steps", "3", "--batch", "4",
               "--eval", "0", "--train-problems", "50").stdout
    assert "3 steps of 4" in more
    assert json.loads((tmp_path / "more" / "kpo_model.json").read_text())["tokenizer"] == "byte"


@pytest.mark.parametrize("args, needle", [
    (["--init", "tiny"], "--out"),
    (["--out", "X"], "exactly one of --model"),
    (["--init", "tiny", "--model", "M", "--out", "X"], "exactly one of --model"),
    (["--init", "huge", "--out", "X"], "--init"),
    (["--init", "tiny", "--out", "X", "--difficulty", "9"], "--difficulty"),
    (["--init", "tiny", "--out", "X", "--lr", "-1"], "--lr"),
    (["--init", "tiny", "--out", "X", "--steps", "ten"], "--steps"),
    (["--init", "tiny", "--out", "X", "--data", "/nonexistent.jsonl"], "/nonexistent.jsonl"),
    (["--init", "tiny", "--out", "X", "--reward", "bleu"], "bleu"),
    (["--init", "tiny", "--out", "X", "--bogus", "1"], "--bogus"),
    (["--model", "/nonexistent", "--out", "X"], "/nonexistent"),
    (["--init", "tiny", "--out", "X", "--device", "gpu"], "--device = 'gpu': expected cpu or cuda"),
])
def test_bad_options_fail_with_one_line(tmp_path, args, needle):
    args = [str(tmp_path / a) if a == "X" else a for a in args]
    result = kpo("sft", *args, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kpo: "), result.stderr
    assert needle in lines[0], lines[0]
    assert not os.path.exists(tmp_path / "X")


def test_device_cpu_is_the_default(trained, tmp_path):
    out, stdout = trained
    cpu = tmp_path / "cpu"
    again = kpo("sft", *SMALL, "--device", "cpu", "--out", cpu).stdout
    assert "40 steps of 8 on cpu (fp32)" in again
    assert losses(again) == losses(stdout)
    assert (cpu / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_cuda_without_gpu_fails_cleanly(tmp_path):
    info = kpo("info").stdout
    if re.search(r"^devices: [1-9]\d* GPU", info, re.M):
        pytest.skip("this machine has a GPU: --device cuda would run (tests/gpu covers it)")
    out = tmp_path / "cuda"
    result = kpo("sft", *SMALL, "--device", "cuda", "--out", out, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kpo: --device cuda: no usable GPU: "), \
        result.stderr
    assert result.stdout == ""  # failed before loading or training anything
    assert not out.exists()
