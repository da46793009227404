"""`kpo train CONFIG... --plan`: the GPU memory plan of a run's ranks,
without a GPU or MPI (docs/cuda.md, "The rollout's KV cache in the memory
plan"). The paper's config at the Qwen3-4B shape (the shared data's
config.json): the model's state at its closed-form bytes per parameter, the
KV cache at its closed-form bytes per slot, the slots the rest of an
H200's memory leaves, the schedule that forces, learner.recompute = auto's
choice, the roles of separate rollout ranks, and bad input refused."""
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import run

SOURCE_ROOT = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
SHARED = Path(os.environ.get("KPO_SHARED", SOURCE_ROOT.parent / "shared"))
CONFIG_4B = SHARED / "data" / "qwen3_configs" / "Qwen3-4B-Base.config.json"
GIB = 1024.0 ** 3
PAPER = [SOURCE_ROOT / "configs" / "base-paper.ini", SOURCE_ROOT / "configs" / "kpo-weak.ini"]


@pytest.fixture(scope="module")
def model_4b(tmp_path_factory):
    if not CONFIG_4B.exists():
        pytest.skip(f"{CONFIG_4B} is absent (../shared/data): no Qwen3-4B shape to plan")
    d = tmp_path_factory.mktemp("qwen3-4b")
    shutil.copy(CONFIG_4B, d / "config.json")
    return d


def plan(model_dir, *extra, check=True):
    return run(["train", *PAPER, "--set", f"model.path={model_dir}", "--set", "data.train=arith",
                "--plan", *extra], check=check, base_env={})


def sections(text):
    """{label: section text} for each rank kind the plan prints."""
    parts = re.split(r"^(\S[^\n]*\):)\n", text, flags=re.MULTILINE)
    return {parts[k].split(" (")[0]: parts[k + 1] for k in range(1, len(parts) - 1, 2)}


def gib(section, item):
    return float(re.search(rf"^  {re.escape(item)}\s+([\d.]+) GiB", section, re.MULTILINE).group(1))


def test_paper_rollout_on_one_h200(model_4b):
    c = json.loads(CONFIG_4B.read_text())
    text = plan(model_4b, "--gpu-memory", "141").stdout
    both = sections(text)["every rank, learner and rollout"]
    n = int(re.search(r"GPU memory plan: (\d+) parameters", both).group(1))
    assert n == 4022468096
    assert gib(both, "weights (bf16)") == pytest.approx(2 * n / GIB, abs=1e-3)
    assert gib(both, "AdamW m, v (fp32)") == pytest.approx(8 * n / GIB, abs=1e-3)
    # K and V of every layer at 1024 + 4096 positions, bf16: the closed form.
    slot = 2 * c["num_hidden_layers"] * c["num_key_value_heads"] * c["head_dim"] * 2 * 5120
    got = re.search(r"(\d+) of (\d+) slots x 5120 positions \(K, V ([\d.]+) GiB a slot\)", both)
    assert float(got.group(3)) == pytest.approx(slot / GIB, abs=1e-3)
    slots, wanted = int(got.group(1)), int(got.group(2))
    assert wanted == 256                    # rollout.max_batch = 256 in the paper's config
    assert 0 < slots < wanted               # 256 x 0.70 GiB does not fit beside the learner
    waves = int(re.search(r"256 responses a step in (\d+) wave", both).group(1))
    assert waves == -(-256 // slots)
    # The numbers docs/cuda.md quotes: 67 GiB of training state (2 + 4 + 4
    # + 8 bytes a parameter) leave room for 80 slots, so 4 waves.
    state = sum(gib(both, item) for item in ("weights (bf16)", "master weights (fp32)",
                                            "gradients (fp32)", "AdamW m, v (fp32)"))
    assert state == pytest.approx(18 * n / GIB, abs=4e-3) and round(state) == 67
    assert (slots, waves) == (80, 4)
    total = gib(both, "total")
    assert total + gib(both, "KV cache (bf16) + decode") <= 141e9 / GIB
    assert "of 131.316 GiB free" in both and ": fits" in both
    # A smaller rollout.max_batch caps the slots, and the plan says how many
    # the memory would have held.
    capped = sections(plan(model_4b, "--gpu-memory", "141", "--set",
                           "rollout.max_batch=64").stdout)["every rank, learner and rollout"]
    assert re.search(r"64 of 64 slots", capped)
    assert f"rollout.max_batch = 64 caps them: {slots} would fit" in capped
    assert "256 responses a step in 4 wave(s) of up to 64" in capped


def test_separate_rollout_ranks_and_recompute_auto(model_4b):
    text = plan(model_4b, "--ranks", 8, "--set", "rollout.ranks=4", "--set",
                "learner.recompute=auto", "--set", "rollout.schedule=refill",
                "--gpu-memory", "141").stdout
    s = sections(text)
    assert set(s) == {"learner rank 0", "rollout rank 0"}
    # 10,240 tokens a micro-batch fit an H200 without recomputation.
    assert "training, recompute off (auto)" in s["learner rank 0"]
    assert round(gib(s["learner rank 0"], "total")) == 107   # as docs/cuda.md says
    assert "KV cache" not in s["learner rank 0"]
    rollout = s["rollout rank 0"]
    assert "inference only" in rollout
    assert re.search(r"64 of 64 slots", rollout)      # 32 prompts / 4 ranks x 8
    assert "64 responses a step through 64 slots, each refilled" in rollout
    # On an 80 GB GPU the same learner keeps recomputation.
    small = sections(plan(model_4b, "--ranks", 8, "--set", "rollout.ranks=4", "--set",
                          "learner.recompute=auto", "--gpu-memory", "80").stdout)
    assert "training, recompute on (auto)" in small["learner rank 0"]


def test_unknown_memory_plans_every_slot(model_4b):
    both = sections(plan(model_4b).stdout)["every rank, learner and rollout"]
    assert "(device memory unknown)" in both
    assert re.search(r"256 of 256 slots", both)


def test_bad_input_is_refused(model_4b, tmp_path):
    for extra, needle in ((("--ranks", 0), "--ranks must be in [1, 1000000]"),
                          (("--gpu-memory", "lots"), "--gpu-memory"),
                          (("--ranks", 4, "--set", "rollout.ranks=4"),
                           "rollout.ranks = 4: needs at least one learner among the 4 rank(s)")):
        r = plan(model_4b, *extra, check=False)
        assert r.returncode != 0 and needle in r.stderr, r.stderr
        assert r.stdout == ""
    r = plan(tmp_path, check=False)                   # no config.json there
    assert r.returncode != 0 and "model.path = " in r.stderr and "no config.json" in r.stderr
