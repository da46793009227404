"""`kpo train --resume` checks what it resumes: the checkpoint's
trainer_state.json (step, seed, data cursor, resolved config) against the
new config (changes that alter the experiment refused unless
run.allow_config_change, then recorded in run.h5), each checkpoint's files
against its manifest.json (a corrupt newest one skipped for the newest
complete one), and one trainer per run directory (RUN/.lock)."""
import json
import os
import shutil
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
from safetensors_reader import read_tensors

from conftest import KPO, MPI_ENV, run, write_config
from kpo_run import records, steps_of

ISSUE_CHANGES = ["run.seed=7", "learner.objective=grpo", "optim.lr=0.5",
                 "rollout.group_size=2", "filter.mode=none"]

# XXH64 (the xxHash specification), independent of kpo's C code.
M64 = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                      0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _round(acc, x):
    return _rotl((acc + x * P2) & M64, 31) * P1 & M64


def xxh64(b, seed=0):
    n, p = len(b), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M64, (seed + P2) & M64, seed, (seed - P1) & M64]
        words = np.frombuffer(b[:n - n % 32], dtype="<u8").reshape(-1, 4)
        for row in words:
            for i in range(4):
                v[i] = _round(v[i], int(row[i]))
        p = len(words) * 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M64
        for x in v:
            h = ((h ^ _round(0, x)) * P1 + P4) & M64
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while p + 8 <= n:
        h = (_rotl(h ^ _round(0, int.from_bytes(b[p:p + 8], "little")), 27) * P1 + P4) & M64
        p += 8
    if p + 4 <= n:
        h = (_rotl(h ^ (int.from_bytes(b[p:p + 4], "little") * P1 & M64), 23) * P2 + P3) & M64
        p += 4
    while p < n:
        h = _rotl(h ^ (b[p] * P5 & M64), 11) * P1 & M64
        p += 1
    h ^= h >> 33
    h = h * P2 & M64
    h ^= h >> 29
    h = h * P3 & M64
    return h ^ (h >> 32)


def kpo_messages(result):
    return [line for line in result.stderr.splitlines() if line.startswith("kpo:")]


@pytest.fixture()
def eight_steps(tmp_path, tiny_model):
    """A run of 8 steps: checkpoints 6 and 8."""
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run", run={"steps": 8})
    run(["train", cfg])
    return cfg, tmp_path / "run"


def resume(cfg, *sets, check=False):
    args = ["train", cfg, "--resume"]
    for s in sets:
        args += ["--set", s]
    return run(args, check=check)


def test_issue_changes_refused_naming_each_key(eight_steps):
    cfg, out = eight_steps
    before = records(out / "run.h5")
    result = resume(cfg, *ISSUE_CHANGES)
    assert result.returncode == 1
    (message,) = kpo_messages(result)
    assert "step-00000008/trainer_state.json: --resume would change the experiment" in message
    for change in ("run.seed: 1 -> 7", "learner.objective: kpo -> grpo",
                   "optim.lr: 0.001 -> 0.5", "rollout.group_size: 4 -> 2",
                   "filter.mode: sigma -> none"):
        assert change in message, message
    assert "run.allow_config_change=true" in message
    # Nothing was run or cut back.
    after = records(out / "run.h5")
    assert steps_of(out / "run.h5") == list(range(1, 9))
    for key in before:
        assert np.array_equal(before[key], after[key], equal_nan=True), key


def test_changed_data_is_refused(eight_steps):
    cfg, _ = eight_steps
    (message,) = kpo_messages(resume(cfg, "data.arith_problems=150"))
    assert "data.arith_problems: 200 -> 150" in message
    assert "data: 200 prompts xxh64 " in message and "-> 150 prompts xxh64 " in message


def test_override_continues_and_is_recorded(eight_steps):
    cfg, out = eight_steps
    result = resume(cfg, *ISSUE_CHANGES, "run.steps=10", "run.allow_config_change=true",
                    check=True)
    assert "finished at step 10" in result.stdout
    assert "resuming after step 8 with a changed experiment" in result.stderr
    assert steps_of(out / "run.h5") == list(range(1, 11))
    with h5py.File(out / "run.h5", "r") as f:
        assert "mode = sigma" in f.attrs["config"]          # the config the run started with
        assert list(f["config_changes"]) == ["step-00000008"]
        change = f["config_changes/step-00000008"].attrs
        assert change["step"] == 8
        assert "learner.objective: kpo -> grpo" in change["changes"]
        assert "rollout.group_size: 4 -> 2" in change["changes"]
        assert "objective = grpo" in change["config"] and "mode = none" in change["config"]
        assert change["allowed_by"] == "run.allow_config_change = true"
        assert np.all(f["metrics/updates"][:] == 2)
    # The checkpoint now holds the new config: resuming with it needs nothing.
    state = json.loads((out / "checkpoints/step-00000010/trainer_state.json").read_text())
    assert state["config"]["learner.objective"] == "grpo" and state["seed"] == 7
    again = resume(cfg, *ISSUE_CHANGES, "run.steps=11", check=True)
    assert "finished at step 11" in again.stdout
    with h5py.File(out / "run.h5", "r") as f:
        assert list(f["config_changes"]) == ["step-00000008"]


def test_override_record_dropped_when_its_steps_are_run_again(eight_steps, tmp_path):
    cfg, out = eight_steps
    resume(cfg, "optim.lr=0.5", "run.steps=10", "run.allow_config_change=true", check=True)
    # Back to step 8 (the only checkpoint kept from before the change), with
    # the original config: the change no longer applies.
    shutil.rmtree(out / "checkpoints/step-00000010")
    resume(cfg, "run.steps=10", check=True)
    with h5py.File(out / "run.h5", "r") as f:
        assert "config_changes" not in f or list(f["config_changes"]) == []


def test_harmless_changes_pass(eight_steps):
    cfg, out = eight_steps
    result = resume(cfg, "run.steps=9", "run.checkpoint_every=3", "run.keep_checkpoints=3",
                    "run.log_samples=2", "run.dump_responses=1", "rollout.max_batch=5",
                    "learner.micro_batch_tokens=40", "learner.recompute=false",
                    "optim.lr=1e-3", check=True)     # 0.001 written another way is no change
    assert "finished at step 9" in result.stdout
    assert "resuming after step 8 with run.steps: 8 -> 9; run.checkpoint_every: 2 -> 3" in \
        result.stdout
    assert "optim.lr" not in result.stdout + result.stderr
    assert not kpo_messages(result)


def test_manifest_checksums_are_xxh64_of_every_file(eight_steps):
    _, out = eight_steps
    ckpt = out / "checkpoints/step-00000008"
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["format"] == "kpo-checkpoint-manifest" and manifest["hash"] == "xxh64"
    names = [e["name"] for e in manifest["files"]]
    assert names == sorted(p.name for p in ckpt.iterdir() if p.name != "manifest.json")
    assert {"model.safetensors", "optimizer.safetensors", "trainer_state.json"} <= set(names)
    for entry in manifest["files"]:
        data = (ckpt / entry["name"]).read_bytes()
        assert entry["size"] == len(data)
        assert entry["xxh64"] == f"{xxh64(data):016x}", entry["name"]
    assert f"{xxh64(b''):016x}" == "ef46db3751d8e999" and f"{xxh64(b'abc'):016x}" == \
        "44bc2cf5ad770999"


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,reason", [
    (truncate, "model.safetensors is "),
    (flip_byte, "model.safetensors has checksum xxh64 "),
])
def test_corrupt_newest_checkpoint_falls_back(eight_steps, tmp_path, damage, reason):
    cfg, out = eight_steps
    reference = tmp_path / "reference"
    shutil.copytree(out, reference)
    shutil.rmtree(reference / "checkpoints/step-00000008")   # its newest: step 6
    damage(out / "checkpoints/step-00000008/model.safetensors")
    result = resume(cfg, "run.steps=10", check=True)
    assert "finished at step 10" in result.stdout
    warnings = [m for m in kpo_messages(result) if "skipping checkpoint step 8" in m]
    assert len(warnings) == 1 and reason in warnings[0], result.stderr
    assert "moved aside to " in warnings[0]
    assert os.path.isdir(out / "checkpoints/step-00000008.corrupt")
    assert "step   7/10" in result.stdout
    # The same as resuming from step 6 in the first place.
    text = cfg.read_text().replace(f"out = {out}", f"out = {reference}")
    (tmp_path / "ref.ini").write_text(text)
    run(["train", tmp_path / "ref.ini", "--resume", "--set", "run.steps=10"])
    a, b = records(out / "run.h5"), records(reference / "run.h5")
    assert steps_of(out / "run.h5") == list(range(1, 11))
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key], equal_nan=True), key
    wa = read_tensors(out / "checkpoints/step-00000010/model.safetensors")
    wb = read_tensors(reference / "checkpoints/step-00000010/model.safetensors")
    for name in wa:
        assert wa[name] == wb[name], name


def test_no_complete_checkpoint_fails_naming_each(eight_steps):
    cfg, out = eight_steps
    truncate(out / "checkpoints/step-00000008/optimizer.safetensors")
    flip_byte(out / "checkpoints/step-00000006/trainer_state.json")
    result = resume(cfg, "run.steps=10")
    assert result.returncode == 1
    (message,) = [m for m in kpo_messages(result) if "no complete checkpoint" in m]
    assert "checkpoints: no complete checkpoint to resume from" in message
    assert "step-00000008: optimizer.safetensors is " in message
    assert "step-00000006: trainer_state.json has checksum" in message
    assert steps_of(out / "run.h5") == list(range(1, 9))


def write_state(ckpt, text, manifest=False):
    (ckpt / "trainer_state.json").write_text(text)
    if manifest:   # as kpo would have written it: the checksum matches
        m = json.loads((ckpt / "manifest.json").read_text())
        for e in m["files"]:
            if e["name"] == "trainer_state.json":
                e["size"], e["xxh64"] = len(text.encode()), f"{xxh64(text.encode()):016x}"
        (ckpt / "manifest.json").write_text(json.dumps(m))
    else:          # an older kpo's checkpoint: no manifest
        (ckpt / "manifest.json").unlink()


@pytest.mark.parametrize("state,manifest,needle", [
    ('{"step": 8, "se', False, "trainer_state.json: not valid JSON"),
    ('{"step": 99}', False, "trainer_state.json: field 'step' is 99 but the checkpoint is step 8"),
    ('{"step": 8}', False, "trainer_state.json: field 'seed' is missing"),
    ('{"step": 8, "seed": 1}', True, "trainer_state.json: field 'config' is missing"),
    ('{"step": 99}', True, "trainer_state.json: field 'step' is 99"),
])
def test_bad_trainer_state_refused(eight_steps, state, manifest, needle):
    cfg, out = eight_steps
    write_state(out / "checkpoints/step-00000008", state, manifest)
    result = resume(cfg, "run.steps=10")
    assert result.returncode == 1
    messages = kpo_messages(result)
    assert any(needle in m for m in messages), result.stderr
    assert steps_of(out / "run.h5") == list(range(1, 9))


def test_trainer_state_fields_are_checked_one_by_one(eight_steps):
    cfg, out = eight_steps
    ckpt = out / "checkpoints/step-00000008"
    good = json.loads((ckpt / "trainer_state.json").read_text())
    for field in ("seed", "data", "config"):
        state = {k: v for k, v in good.items() if k != field}
        write_state(ckpt, json.dumps(state), manifest=True)
        (message,) = [m for m in kpo_messages(resume(cfg, "run.steps=10")) if "field" in m]
        assert f"trainer_state.json: field '{field}' is missing" in message, message
    state = dict(good, data=dict(good["data"], position=31))
    write_state(ckpt, json.dumps(state), manifest=True)
    (message,) = kpo_messages(resume(cfg, "run.steps=10"))
    assert "field 'data' (position 31" in message


def test_older_checkpoint_without_manifest_or_config_is_accepted(eight_steps):
    cfg, out = eight_steps
    write_state(out / "checkpoints/step-00000008", '{"step": 8, "seed": 1}')
    result = resume(cfg, "run.steps=9", check=True)
    assert "finished at step 9" in result.stdout
    assert "has no manifest.json" in result.stderr and "holds no config" in result.stderr


@pytest.mark.parametrize("second_args", [["--resume"], []])
def test_second_trainer_on_a_running_directory_is_refused(tmp_path, tiny_model, second_args):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"steps": 400, "checkpoint_every": 1})
    first = subprocess.Popen([KPO, "train", str(cfg)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, **MPI_ENV))
    try:
        deadline = time.time() + 120
        for line in first.stdout:
            if line.startswith("step   2/"):
                break
            assert time.time() < deadline, "the first trainer did not reach step 2"
        second = run(["train", cfg, *second_args], check=False)
        assert second.returncode == 1
        (message,) = kpo_messages(second)
        assert f"{tmp_path / 'run'}: locked by another kpo train (host " in message
        assert f"pid {first.pid})" in message
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    # Once it is gone, the directory is free: the killed run resumes.
    result = run(["train", cfg, "--resume", "--set", "run.steps=3"])
    assert "finished at step" in result.stdout
