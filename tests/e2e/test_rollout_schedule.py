"""rollout.schedule = refill end to end: two short `kpo train` runs of
configs/tiny.ini on the CPU (a tiny random model, fewer KV-cache slots than
responses, stop ids a random model draws often so that lengths vary), one
per schedule. Refill draws exactly the responses waves draws (the dumped
responses, and every non-timing record of run.h5: rewards, lengths, the
log-ratios and the filter's statistics), and keeps its slots busier
(`rollout_slot_occupancy`). `kpo eval --schedule` likewise, with more
samples per problem than slots."""
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import kpo_run
from conftest import run

SOURCE_ROOT = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
RESPONSES = 16 * 8  # configs/tiny.ini: prompts_per_step x group_size
# Byte ids 0..15: a random model draws one of them every few tokens, so some
# responses stop at once and others run to max_new_tokens.
STOP_IDS = ",".join(str(i) for i in range(16))
OCCUPANCY = "metrics/rollout_slot_occupancy"


def train(out_dir, model_dir, schedule):
    settings = {"model.path": model_dir, "run.out": out_dir, "run.steps": 2,
                "run.checkpoint_every": 0, "run.dump_responses": RESPONSES,
                "rollout.max_batch": 24, "rollout.stop": STOP_IDS,
                "rollout.schedule": schedule}
    args = ["train", SOURCE_ROOT / "configs" / "tiny.ini"]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    return run(args)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model):
    out = {}
    for schedule in ("waves", "refill"):
        run_dir = tmp_path_factory.mktemp(schedule) / "run"
        train(run_dir, tiny_model, schedule)
        out[schedule] = run_dir
    return out


def test_refill_draws_the_responses_waves_draws(runs):
    waves = (runs["waves"] / "responses.jsonl").read_text().splitlines()
    refill = (runs["refill"] / "responses.jsonl").read_text().splitlines()
    assert len(waves) == 2 * RESPONSES
    assert waves == refill
    with h5py.File(runs["waves"] / "run.h5") as f:
        lengths = f["metrics/response_length_mean"][:]
        stopped = f["metrics/stopped_fraction"][:]
    # The lengths varied: some responses stopped, others were cut.
    assert np.all((stopped > 0.1) & (stopped < 0.95)), stopped
    assert np.all(lengths > 2), lengths


def test_refill_run_file_matches_waves(runs):
    """Every record but the wall-clock times and the occupancy."""
    waves = kpo_run.records(runs["waves"] / "run.h5")
    refill = kpo_run.records(runs["refill"] / "run.h5")
    assert waves.keys() == refill.keys()
    for name in waves:
        if name != OCCUPANCY:
            np.testing.assert_array_equal(waves[name], refill[name], err_msg=name)
    assert "metrics/reward_mean" in waves and "samples/values" in waves


def test_refill_keeps_slots_busier(runs):
    occupancy = {}
    for schedule, run_dir in runs.items():
        with h5py.File(run_dir / "run.h5") as f:
            occupancy[schedule] = f[OCCUPANCY][:]
        assert occupancy[schedule].shape == (2,)
        assert np.all((occupancy[schedule] > 0) & (occupancy[schedule] <= 1))
    assert np.all(occupancy["refill"] >= occupancy["waves"]), occupancy
    # 128 responses in 24 slots, lengths from 1 to 24: waves leaves much idle.
    assert np.all(occupancy["refill"] > occupancy["waves"] + 0.1), occupancy


def evaluate(tmp_path, model_dir, schedule):
    out = tmp_path / f"{schedule}.h5"
    run(["eval", "--model", model_dir, "--tokenizer", "byte", "--bench", "arith",
         "--arith-problems", 6, "--k", 7, "--max-batch", 4, "--max-new-tokens", 16,
         "--stop", STOP_IDS, "--schedule", schedule, "--out", out,
         "--dump", tmp_path / f"{schedule}.jsonl"])
    with h5py.File(out) as f:
        recorded = f.attrs["schedule"]
        correct = f["bench/arith/correct"][:]
    return (tmp_path / f"{schedule}.jsonl").read_text().splitlines(), recorded, correct


def test_eval_schedule_samples_the_same(tmp_path, tiny_model):
    # --k 7 above --max-batch 4: each chunk is one problem's 7 samples in 4 slots.
    waves, waves_attr, waves_correct = evaluate(tmp_path, tiny_model, "waves")
    refill, refill_attr, refill_correct = evaluate(tmp_path, tiny_model, "refill")
    assert (waves_attr, refill_attr) == ("waves", "refill")
    assert len(waves) == 6 * 7 and waves == refill
    np.testing.assert_array_equal(waves_correct, refill_correct)
    assert len({json.loads(line)["response_tokens"] for line in waves}) > 3
    bad = run(["eval", "--model", tiny_model, "--tokenizer", "byte", "--bench", "arith",
               "--schedule", "sideways", "--out", tmp_path / "bad.h5"], check=False)
    assert bad.returncode != 0 and "--schedule must be waves or refill" in bad.stderr
    assert not (tmp_path / "bad.h5").exists()
