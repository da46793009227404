"""kpo eval --dump (every response as a JSON line, the same file on 1, 2
and 3 ranks) and --reward program (a grader process per rank) end to end
on a tiny random model with the byte tokenizer, with the failures that must
leave no output behind."""
import json
import os
import shutil
import sys
from pathlib import Path

import h5py
import pytest

import eval_work
from eval_work import PROBLEMS

ROOT = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
K = 3
FIELDS = ["benchmark", "problem", "sample", "prompt", "response", "pred", "extracted", "gold",
          "reward", "correct", "stopped", "response_tokens"]


def kpo(*args, launcher=(), check=True):
    return eval_work.kpo(*args, launcher=launcher, check=check, timeout=300)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return eval_work.make_work(tmp_path_factory.mktemp("dump"))


def run_eval(work, out, dump, *extra, launcher=(), check=True):
    args = ["eval", "--model", work / "model", "--tokenizer", "byte", "--bench", "arith",
            "--arith-problems", 5, "--bench", f"small={work / 'small.jsonl'}", "--k", K,
            "--max-new-tokens", 10, "--max-batch", 4, "--seed", 7, "--out", out]
    if dump:
        args += ["--dump", dump]
    return kpo(*args, *extra, launcher=launcher, check=check)


def read_dump(path):
    return [json.loads(line) for line in Path(path).read_bytes().decode("utf-8").splitlines()]


def test_dump_holds_every_response_in_order(work):
    out, dump = work / "one.h5", work / "one.jsonl"
    r = run_eval(work, out, dump)
    assert f"wrote {dump}" in r.stdout.decode()
    rows = read_dump(dump)  # strict UTF-8: invalid sampled bytes were replaced
    assert len(rows) == (5 + 7) * K
    assert all(list(row) == FIELDS for row in rows)
    keys = [(row["benchmark"], row["problem"], row["sample"]) for row in rows]
    assert keys == [(b, p, s) for b, n in (("arith", 5), ("small", 7)) for p in range(n)
                    for s in range(K)]
    small = [row for row in rows if row["benchmark"] == "small"]
    for row in small:
        assert row["gold"] == PROBLEMS[row["problem"]]["answer"]
        assert PROBLEMS[row["problem"]]["problem"] in row["prompt"]
        # A random model never writes "Answer:": dapo's prediction is [INVALID].
        assert row["pred"] == "[INVALID]" and row["extracted"] is False
        assert row["correct"] == (row["gold"] == "[INVALID]")
        assert row["reward"] == (1 if row["correct"] else 0)
        assert 1 <= row["response_tokens"] <= 10
    # The dump's correct samples are the eval file's counts.
    with h5py.File(out, "r") as f:
        for bench in ("arith", "small"):
            counts = [0] * f[f"bench/{bench}/correct"].shape[0]
            for row in rows:
                if row["benchmark"] == bench:
                    counts[row["problem"]] += row["correct"]
            assert counts == list(f[f"bench/{bench}/correct"][:])


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="SKIPPED: no mpirun")
def test_dump_is_identical_on_one_two_and_three_ranks(work):
    """Chunks go round-robin (max_batch 4 / k 3: one problem a chunk), and
    rank 0 interleaves them back: the same bytes whatever the layout."""
    single = work / "r1.jsonl"
    run_eval(work, work / "r1.h5", single)
    for n in (2, 3):
        dump = work / f"r{n}.jsonl"
        run_eval(work, work / f"r{n}.h5", dump,
                 launcher=("mpirun", "--oversubscribe", "-np", str(n)))
        assert dump.read_bytes() == single.read_bytes(), f"{n} ranks"


def test_existing_dump_is_refused(work):
    dump = work / "exists.jsonl"
    dump.write_text("keep me\n")
    r = run_eval(work, work / "exists.h5", dump, check=False)
    assert r.returncode != 0
    assert f"--dump {dump}: already exists" in r.stderr.decode()
    assert dump.read_text() == "keep me\n" and not (work / "exists.h5").exists()


def grader(tmp_path, body):
    path = tmp_path / "grader.py"
    path.write_text("import json, sys, time\n" + body)
    return f"{sys.executable} {path}"


def test_reward_program_counts(work, tmp_path):
    """A grader that calls problem i correct on sample-independent grounds
    (its problem text holds an even number): the counts follow it, and the
    dump carries its scores and predictions."""
    program = grader(tmp_path, """
for line in sys.stdin:
    req = json.loads(line)
    even = int(req["problem"].split()[2]) % 2 == 0
    print(json.dumps({"score": 0.5 if even else -0.5, "correct": even, "pred": "p"}), flush=True)
""")
    out, dump = tmp_path / "prog.h5", tmp_path / "prog.jsonl"
    run_eval(work, out, dump, "--reward", "program", "--reward-program", program)
    with h5py.File(out, "r") as f:
        assert list(f["bench/small/correct"][:]) == [K if i % 2 == 0 else 0 for i in range(7)]
        assert f.attrs["reward"] == "program" and f.attrs["reward_program"] == program
    rows = [row for row in read_dump(dump) if row["benchmark"] == "small"]
    assert {(row["problem"] % 2, row["reward"], row["pred"]) for row in rows} == \
        {(0, 0.5, "p"), (1, -0.5, "p")}


def test_example_grader_in_eval(work, tmp_path):
    program = f"{sys.executable} {ROOT / 'tools' / 'example_grader.py'}"
    out = tmp_path / "example.h5"
    r = run_eval(work, out, None, "--reward", "program", "--reward-program", program)
    assert "small" in r.stdout.decode()
    with h5py.File(out, "r") as f:
        assert f["bench/small/correct"].shape == (7,)


@pytest.mark.parametrize("ranks", [0, 2])
@pytest.mark.parametrize("body,needle", [
    ("sys.exit(4)\n", "exited with status 4"),
    ("sys.stdin.readline()\ntime.sleep(60)\n", "gave no answer within 0.5 s"),
    ("for line in sys.stdin:\n    print('{\"score\": true}', flush=True)\n",
     "answered garbage: \"score\" is of the wrong type"),
])
def test_failing_program_leaves_no_output(work, tmp_path, ranks, body, needle):
    if ranks and shutil.which("mpirun") is None:
        pytest.skip("no mpirun")
    launcher = ("mpirun", "--oversubscribe", "-np", str(ranks)) if ranks else ()
    program = grader(tmp_path, body)
    out, dump = tmp_path / "bad.h5", tmp_path / "bad.jsonl"
    r = run_eval(work, out, dump, "--reward", "program", "--reward-program", program,
                 "--reward-timeout", "0.5", launcher=launcher, check=False)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "grader.py" in err and needle in err, err
    assert not out.exists() and not dump.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp." in p.name]


def test_reward_program_options_go_together(work, tmp_path):
    r = run_eval(work, tmp_path / "x.h5", None, "--reward", "program", check=False)
    assert r.returncode != 0 and "--reward-program CMD goes with --reward program" in \
        r.stderr.decode()
    r = run_eval(work, tmp_path / "x.h5", None, "--reward-program", "cat", check=False)
    assert r.returncode != 0 and "--reward-program CMD goes with --reward program" in \
        r.stderr.decode()
