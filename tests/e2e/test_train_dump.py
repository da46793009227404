"""Training's response dump (run.dump_responses -> RUN/responses.jsonl) and
the program reward (rollout.reward = program) end to end on a tiny random
model: the dumped lines, no duplicates after a resume, the grader's scores
reaching the run file, and a failing grader ending the run with a message
that names it."""
import json
import os
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import run, write_config

ROOT = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
FIELDS = ["step", "prompt_index", "problem", "sample", "prompt", "response", "gold", "reward",
          "stopped", "response_tokens"]


def dump_rows(run_dir):
    text = (run_dir / "responses.jsonl").read_bytes().decode("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_dump_lines_and_fields(tmp_path, tiny_model):
    # 16 responses a step (4 prompts x G = 4); 6 of them, spread: i * 16 // 6.
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"steps": 3, "dump_responses": 6})
    run(["train", cfg])
    rows = dump_rows(tmp_path / "run")
    assert len(rows) == 18 and all(list(r) == FIELDS for r in rows)
    picked = [i * 16 // 6 for i in range(6)]
    assert [(r["step"], r["prompt_index"], r["sample"]) for r in rows] == \
        [(s, i // 4, i % 4) for s in (1, 2, 3) for i in picked]
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        assert list(f["steps/step"][:]) == [1, 2, 3]
    for r in rows:
        assert "What is" in r["prompt"] and r["gold"].lstrip("-").isdigit()
        assert r["reward"] in (0, 1) and 1 <= r["response_tokens"] <= 12
    # The same prompt gives the same problem within a step.
    for s in (1, 2, 3):
        by_prompt = {}
        for r in rows:
            if r["step"] == s:
                assert by_prompt.setdefault(r["prompt_index"], r["problem"]) == r["problem"]


def test_dump_off_by_default(tmp_path, tiny_model):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run", run={"steps": 1})
    run(["train", cfg])
    assert not (tmp_path / "run" / "responses.jsonl").exists()


def test_resume_does_not_duplicate_lines(tmp_path, tiny_model):
    """Steps redone after a resume replace their lines: the dump equals an
    uninterrupted run's, even when the run got past its last checkpoint
    (step 4 written, checkpoint 4 lost) or left a line cut short."""
    settings = {"run": {"steps": 4, "checkpoint_every": 2, "dump_responses": 3}}
    straight = write_config(tmp_path / "a.ini", tiny_model, tmp_path / "a", **settings)
    run(["train", straight])
    expected = (tmp_path / "a" / "responses.jsonl").read_bytes()
    assert len(expected.splitlines()) == 12
    split = write_config(tmp_path / "b.ini", tiny_model, tmp_path / "b", **settings)
    run(["train", split])
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-00000004")
    with open(tmp_path / "b" / "responses.jsonl", "ab") as f:
        f.write(b'{"step":4,"prompt_index":0,"cut sh')   # a crash mid-line
    result = run(["train", split, "--resume"])
    assert "finished at step 4" in result.stdout
    assert (tmp_path / "b" / "responses.jsonl").read_bytes() == expected


def grader(tmp_path, body):
    path = tmp_path / "grader.py"
    path.write_text("import json, sys, time\n" + body)
    return f"{sys.executable} {path}"


@pytest.mark.parametrize("ranks,rollout_ranks", [(0, 0), (2, 1)])
def test_program_reward_drives_training(tmp_path, tiny_model, ranks, rollout_ranks):
    """A grader that scores every response 1 unless its problem holds a 7:
    the run file's reward and accuracy are its verdicts, and the dump shows
    its scores (the gradient signal is nil, the run still completes)."""
    program = grader(tmp_path, """
for line in sys.stdin:
    req = json.loads(line)
    ok = "7" not in req["problem"]
    print(json.dumps({"score": 1.0 if ok else 0.0, "correct": ok}), flush=True)
""")
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"steps": 2, "dump_responses": 16},
                       rollout={"reward": "program", "reward_program": program,
                                "ranks": rollout_ranks})
    run(["train", cfg], ranks=ranks)
    rows = dump_rows(tmp_path / "run")
    assert len(rows) == 32
    for r in rows:
        assert r["reward"] == (0.0 if "7" in r["prompt"].split("What is")[1] else 1.0)
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        for s in (1, 2):
            mine = [r["reward"] for r in rows if r["step"] == s]
            assert np.isclose(f["metrics/reward_mean"][s - 1], np.mean(mine))
            assert np.isclose(f["metrics/accuracy"][s - 1], np.mean(mine))


def test_example_grader_in_training(tmp_path, tiny_model):
    program = f"{sys.executable} {ROOT / 'tools' / 'example_grader.py'}"
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"steps": 1, "dump_responses": 2},
                       rollout={"reward": "program", "reward_program": program})
    result = run(["train", cfg])
    assert "finished at step 1" in result.stdout


@pytest.mark.parametrize("body,needle", [
    ("sys.exit(5)\n", "exited with status 5"),
    ("sys.stdin.readline()\ntime.sleep(60)\n", "gave no answer within 0.5 s"),
    ("for line in sys.stdin:\n    print('{not json', flush=True)\n",
     "answered garbage: '{not json' is not a JSON object"),
])
def test_failing_program_ends_the_run(tmp_path, tiny_model, body, needle):
    program = grader(tmp_path, body)
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"steps": 2, "dump_responses": 4},
                       rollout={"reward": "program", "reward_program": program,
                                "reward_timeout": 0.5})
    result = run(["train", cfg], check=False, timeout=120)
    assert result.returncode != 0
    assert "grader.py" in result.stderr and needle in result.stderr, result.stderr
    assert not (tmp_path / "run" / "responses.jsonl").exists()
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        assert f["steps/step"].shape[0] == 0


def test_program_reward_needs_a_program(tmp_path, tiny_model):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       rollout={"reward": "program"})
    result = run(["train", cfg], check=False)
    assert result.returncode != 0
    assert "rollout.reward = program: set rollout.reward_program" in result.stderr
    assert not (tmp_path / "run").exists()
