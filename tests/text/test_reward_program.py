"""The `program` reward through `kpo reward --kind program`: the example
grader in tools/ (exact match without sympy), the line protocol (what kpo
sends, both answer forms), and the failures a grader can have (it exits,
it hangs past the timeout, it answers garbage), each a clear message that
names the program and a non-zero exit."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

KPO = os.environ.get("KPO_BIN", "kpo")
ROOT = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
GRADER = f"{sys.executable} {ROOT / 'tools' / 'example_grader.py'}"


def reward(*args, stdin="", timeout=60):
    return subprocess.run([KPO, "reward", *map(str, args)], input=stdin.encode(),
                          capture_output=True, timeout=timeout)


def script(tmp_path, name, body):
    """A grader program written as a Python file; returns its command line."""
    path = tmp_path / name
    path.write_text("import json, sys, time\n" + body)
    return f"{sys.executable} {path}"


@pytest.mark.parametrize("response,gold,correct,pred", [
    ("so the answer is \\boxed{4}", "4", True, "4"),
    ("a decoy \\boxed{3} then \\boxed{\\frac{1}{2}}", "\\dfrac{1}{2}", True, "\\frac{1}{2}"),
    ("work...\nAnswer: $1,000$.", "1000", True, "1000"),
    ("Answer: 2.0", "2", True, "2.0"),
    ("\\boxed{5}", "4", False, "5"),
    ("no answer here", "4", False, ""),
])
def test_example_grader_single(response, gold, correct, pred):
    r = reward("--kind", "program", "--program", GRADER, "--gold", gold, "--explain",
               stdin=response)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert float(lines[0]) == (1.0 if correct else 0.0)
    assert lines[1] == f"correct {int(correct)}"
    assert lines[3].split(" ", 1) == ["pred", pred]


def test_example_grader_jsonl_one_process(tmp_path):
    """--jsonl scores every line with one grader process, in order."""
    rows = [{"response": f"\\boxed{{{i}}}", "gold": str(i if i % 2 else i + 1)} for i in range(50)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    started = time.time()
    r = reward("--kind", "program", "--program", GRADER, "--jsonl", path)
    assert r.returncode == 0, r.stderr.decode()
    out = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [o["correct"] for o in out] == [bool(i % 2) for i in range(50)]
    assert [o["score"] for o in out] == [float(i % 2) for i in range(50)]
    # 50 interpreter starts would take seconds; one takes well under that.
    assert time.time() - started < 20


def test_protocol_request_and_answer_forms(tmp_path):
    """kpo sends response, gold and problem (null unless given); the grader
    may answer a bare number or an object; its stderr passes through."""
    echo = script(tmp_path, "echo.py", """
for i, line in enumerate(sys.stdin):
    req = json.loads(line)
    print("grader saw", sorted(req), file=sys.stderr, flush=True)
    if i == 0:
        print(0.25, flush=True)
    else:
        print(json.dumps({"score": -1.5, "correct": False,
                          "pred": f"{req['response']}|{req['gold']}|{req['problem']}"}), flush=True)
""")
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"response": "r0", "gold": "g0"}) + "\n" +
                    json.dumps({"response": "multi\nline \"r1\"", "gold": "g1",
                                "problem": "p1"}) + "\n" +
                    json.dumps({"response": "r2", "gold": "g2"}) + "\n")
    r = reward("--kind", "program", "--program", echo, "--jsonl", path)
    assert r.returncode == 0, r.stderr.decode()
    out = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert out[0] == {"score": 0.25, "correct": True, "extracted": True, "pred": ""}
    assert out[1] == {"score": -1.5, "correct": False, "extracted": True,
                      "pred": "multi\nline \"r1\"|g1|p1"}
    assert out[2]["pred"] == "r2|g2|None"
    assert r.stderr.decode().count("grader saw ['gold', 'problem', 'response']") == 3
    # --problem in the single-response form.
    one = reward("--kind", "program", "--program", echo, "--gold", "g", "--problem", "P",
                 "--explain", stdin="x")
    assert one.returncode == 0 and one.stdout.decode().splitlines()[0] == "0.25"


def expect_failure(r, *needles):
    assert r.returncode != 0
    err = r.stderr.decode()
    messages = [line for line in err.splitlines() if line.startswith("kpo:")]
    assert len(messages) == 1, err
    for needle in needles:
        assert needle in messages[0], messages[0]
    return messages[0]


def test_program_that_exits_immediately(tmp_path):
    quits = script(tmp_path, "quits.py", "sys.exit(3)\n")
    r = reward("--kind", "program", "--program", quits, "--gold", "1", stdin="x")
    expect_failure(r, 'reward program "', "quits.py", "exited with status 3")
    assert r.stdout == b""


def test_program_that_sleeps_past_the_timeout(tmp_path):
    sleeps = script(tmp_path, "sleeps.py", "sys.stdin.readline()\ntime.sleep(60)\n")
    started = time.time()
    r = reward("--kind", "program", "--program", sleeps, "--timeout", "0.5", "--gold", "1",
               stdin="x")
    expect_failure(r, "sleeps.py", "gave no answer within 0.5 s")
    assert time.time() - started < 10  # killed, not waited for


@pytest.mark.parametrize("answer,needle", [
    ("hello", "'hello' is not a finite number or a JSON object"),
    ("{\"score\": 1", "is not a JSON object"),
    ("{\"score\": \"1\"}", "\"score\" is of the wrong type"),
    ("{\"correct\": true}", "\"score\" is missing"),
    ("{\"score\": 1, \"correct\": 1}", "\"correct\" is not true or false"),
    ("{\"score\": 1, \"pred\": 7}", "\"pred\" is not a string"),
    ("nan", "not a finite number"),
    ("", "an empty line"),
    ("[1]", "not a finite number or a JSON object"),
])
def test_program_that_answers_garbage(tmp_path, answer, needle):
    bad = script(tmp_path, "bad.py", f"sys.stdin.readline()\nprint({answer!r}, flush=True)\n"
                                     "sys.stdin.read()\n")
    r = reward("--kind", "program", "--program", bad, "--gold", "1", stdin="x")
    expect_failure(r, "bad.py", "answered garbage", needle)
    assert r.stdout == b""


def test_jsonl_failure_names_the_line(tmp_path):
    """A grader that dies half-way: the lines before were scored, the
    message names the file line and the program."""
    dies = script(tmp_path, "dies.py", "print(1, flush=True) if sys.stdin.readline() else None\n"
                                       "sys.exit(0)\n")
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"response": "r", "gold": "g"}) + "\n" for _ in range(3)))
    r = reward("--kind", "program", "--program", dies, "--jsonl", path)
    expect_failure(r, f"{path}:2", "dies.py", "exited with status 0")
    assert len(r.stdout.decode().splitlines()) == 1


def test_program_option_goes_with_kind_program():
    r = reward("--kind", "dapo", "--program", GRADER, "--gold", "1", stdin="x")
    expect_failure(r, "--program CMD goes with --kind program")
    r = reward("--kind", "program", "--gold", "1", stdin="x")
    expect_failure(r, "--program CMD goes with --kind program")
    r = reward("--kind", "nope", "--gold", "1", stdin="x")
    expect_failure(r, "dapo, boxed, kpo or program")
