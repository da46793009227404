"""`kpo train` end to end on a tiny random model: the run file, ranks and
roles, bit-exact resume, preemption by signal, and bad configurations."""
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
from safetensors_reader import read_tensors

from conftest import KPO, MPI_ENV, run, write_config
from kpo_run import records, steps_of


@pytest.mark.parametrize("ranks,rollout_ranks", [(0, 0), (2, 0), (2, 1), (3, 1), (3, 2)])
def test_layouts_write_a_complete_run_file(tmp_path, tiny_model, ranks, rollout_ranks):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       rollout={"ranks": rollout_ranks})
    result = run(["train", cfg], ranks=ranks)
    assert "finished at step 4" in result.stdout
    assert result.stdout.count("step ") >= 4
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        assert list(f["steps/step"][:]) == [1, 2, 3, 4]
        assert (f["innovation/count"][:] > 0).all()
        assert np.all(f["metrics/accuracy"][:] >= 0)
        assert np.all(f["metrics/updates"][:] == 2)            # M = 2 optimizer steps
        assert np.all(np.isfinite(f["metrics/loss"][:]))
        assert f["samples/lengths"].shape[0] == 16            # 4 per step
        assert "[filter]" in f.attrs["config"] and "mode = sigma" in f.attrs["config"]
        # Per mini-batch: they add up to the step, and the first, on-policy
        # one sees log-ratios of exactly 0 (old log-probs recomputed by the
        # same learner on the same share).
        per_mb = f["innovation/minibatch_accumulator"][:]
        assert per_mb.shape == (4, 2 * 77)
        assert np.array_equal(per_mb[:, 0] + per_mb[:, 77], f["innovation/count"][:])
        assert np.all(per_mb[:, 5] == 0) and np.all(per_mb[:, 77 + 5] > 0)
    rows = run(["diag", tmp_path / "run" / "run.h5", "--minibatches", "--csv"]).stdout.splitlines()
    assert [r.split(",")[1] for r in rows[1:]] == ["1", "2", "3", "4", "all", "1.1", "1.2", "2.1",
                                                   "2.2", "3.1", "3.2", "4.1", "4.2"]
    ckpts = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    assert ckpts == ["step-00000002", "step-00000004"]


def test_same_run_on_one_and_three_ranks(tmp_path, tiny_model):
    """Rollouts depend only on (seed, step, prompt, sample), not on which rank
    sampled them: the step-1 batch is the same whatever the layout."""
    for name, ranks, rollout in (("one", 0, 0), ("three", 3, 2)):
        cfg = write_config(tmp_path / f"{name}.ini", tiny_model, tmp_path / name,
                           run={"steps": 1}, rollout={"ranks": rollout})
        run(["train", cfg], ranks=ranks)
    with h5py.File(tmp_path / "one/run.h5") as a, h5py.File(tmp_path / "three/run.h5") as b:
        for name in ("reward_mean", "accuracy", "tokens_response", "response_length_max"):
            assert a[f"metrics/{name}"][0] == b[f"metrics/{name}"][0], name


def test_resume_is_bit_exact(tmp_path, tiny_model):
    straight = write_config(tmp_path / "a.ini", tiny_model, tmp_path / "a")
    run(["train", straight])
    split = write_config(tmp_path / "b.ini", tiny_model, tmp_path / "b")
    run(["train", split, "--set", "run.steps=2"])
    assert steps_of(tmp_path / "b/run.h5") == [1, 2]
    result = run(["train", split, "--resume"])
    assert "finished at step 4" in result.stdout
    a, b = records(tmp_path / "a/run.h5"), records(tmp_path / "b/run.h5")
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key], equal_nan=True), key
    wa = read_tensors(tmp_path / "a/checkpoints/step-00000004/model.safetensors")
    wb = read_tensors(tmp_path / "b/checkpoints/step-00000004/model.safetensors")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert wa[name] == wb[name], name
    # A finished run resumed again has nothing to do and says so.
    again = run(["train", split, "--resume"])
    assert "finished at step 4" in again.stdout and "step   1" not in again.stdout


@pytest.mark.parametrize("ranks", [0, 2])
def test_sigusr1_checkpoints_and_resume_completes(tmp_path, tiny_model, ranks):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"steps": 40, "checkpoint_every": 0},
                       rollout={"ranks": 1 if ranks else 0})
    cmd = [KPO, "train", str(cfg)]
    if ranks:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **MPI_ENV))
    seen = []
    deadline = time.time() + 120
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("step   2/"):
            proc.send_signal(signal.SIGUSR1)
            break
        assert time.time() < deadline, "training did not reach step 2"
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "checkpointed and stopped (signal)" in out
    stopped_at = steps_of(tmp_path / "run/run.h5")[-1]
    assert 2 <= stopped_at < 40
    assert os.path.isdir(tmp_path / f"run/checkpoints/step-{stopped_at:08d}")
    run(["train", cfg, "--resume", "--set", "run.steps=" + str(stopped_at + 2)], ranks=ranks)
    assert steps_of(tmp_path / "run/run.h5") == list(range(1, stopped_at + 3))


def test_existing_run_is_not_overwritten(tmp_path, tiny_model):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run", run={"steps": 1})
    run(["train", cfg])
    result = run(["train", cfg], check=False)
    assert result.returncode != 0 and "already exists" in result.stderr
    assert steps_of(tmp_path / "run/run.h5") == [1]


@pytest.mark.parametrize("overrides,ranks,needle", [
    ({"run": {"stepz": 3}}, 0, "unknown key 'stepz' in [run]"),
    ({"filtr": {"q": 1}}, 0, "unknown section [filtr]"),
    ({"filter": {"q": -1}}, 0, "filter.q = '-1'"),
    ({"filter": {"mode": "huber"}}, 0, "filter.mode = 'huber'"),
    ({"rollout": {"group_size": 1}}, 0, "rollout.group_size = '1'"),
    ({"rollout": {"top_p": 0}}, 0, "rollout.top_p"),
    ({"model": {"path": "/nonexistent/model"}}, 0, "model.path = '/nonexistent/model'"),
    ({"data": {"train": "/nonexistent.jsonl"}}, 0, "data.train = '/nonexistent.jsonl'"),
    ({"rollout": {"ranks": 2}}, 2, "rollout.ranks = 2"),
    ({"rollout": {"prompts_per_step": 3}}, 2, "rollout.prompts_per_step = 3"),
    ({"learner": {"minibatches": 3}}, 0, "learner.minibatches = 3"),
    ({"rollout": {"prompts_per_step": 3, "group_size": 5}, "learner": {"minibatches": 3}}, 3,
     "a mini-batch of 5 responses does not split over 3 learner rank(s)"),
])
def test_bad_configs_fail_before_any_work(tmp_path, tiny_model, overrides, ranks, needle):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run", **overrides)
    result = run(["train", cfg], ranks=ranks, check=False)
    assert result.returncode != 0
    messages = [line for line in result.stderr.splitlines() if line.startswith("kpo:")]
    assert len(messages) == 1, result.stderr
    assert needle in messages[0], messages[0]
    assert not (tmp_path / "run").exists()


def test_set_override_unknown_key(tmp_path, tiny_model):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run")
    result = run(["train", cfg, "--set", "learner.objectiv=grpo"], check=False)
    assert result.returncode != 0
    assert "--set learner.objectiv: unknown key 'objectiv' in [learner] (valid: objective," in \
        result.stderr
