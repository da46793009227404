"""kpo tokenize, reward, data and stats (count files) end to end."""
import json
import math
import os
import statistics
import subprocess
from pathlib import Path

import pytest

KPO = os.environ.get("KPO_BIN", "kpo")
SHARED = Path(os.environ.get("KPO_SHARED", "../shared"))
TOKENIZER = SHARED / "data" / "qwen_tokenizer"


def kpo(*args, input=b"", check=True):
    r = subprocess.run([KPO, *map(str, args)], input=input, capture_output=True)
    if check:
        assert r.returncode == 0, r.stderr.decode()
    return r


def failure(r, *needles):
    assert r.returncode != 0
    err = r.stderr.decode()
    assert err.startswith("kpo: ") and err.count("\n") == 1, err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("tok", ["byte", "qwen"])
def test_tokenize_round_trip(tok):
    if tok == "qwen":
        if not (TOKENIZER / "vocab.json").exists():
            pytest.skip(f"SKIPPED: {TOKENIZER} is absent")
        tok = TOKENIZER
    text = "Hello world\n \\frac{1}{2} = 0.5 数学 😀\n<|im_start|>x\n\n".encode()
    ids = kpo("tokenize", "--tokenizer", tok, input=text).stdout
    assert kpo("tokenize", "--tokenizer", tok, "--decode", input=ids).stdout == text
    if tok == TOKENIZER:
        assert ids.split(b"\n")[0] == b"9707 1879"


def test_tokenize_errors():
    failure(kpo("tokenize", check=False), "--tokenizer")
    failure(kpo("tokenize", "--tokenizer", "/nonexistent", check=False), "/nonexistent")
    failure(kpo("tokenize", "--tokenizer", "byte", "--decode", input=b"1 2\n3 x\n", check=False),
            "stdin:2")
    failure(kpo("tokenize", "--tokenizer", "byte", "--decode", input=b"99999\n", check=False),
            "99999")


def test_reward_cli():
    assert kpo("reward", "--kind", "dapo", "--gold", "34", input=b"...\nAnswer: 34").stdout == b"1\n"
    assert kpo("reward", "--kind", "dapo", "--gold", "34", input=b"Answer: 3").stdout == b"-1\n"
    assert kpo("reward", "--kind", "dapo", "--gold", "34", "--zero-one",
               input=b"Answer: 3").stdout == b"0\n"
    assert kpo("reward", "--kind", "boxed", "--gold", "\\frac{1}{2}",
               input=b"so $\\boxed{0.5}$").stdout == b"1\n"
    out = kpo("reward", "--kind", "kpo", "--gold", "5", "--explain",
              input=b"<think>\\boxed{4}</think> \\boxed{5}").stdout.decode()
    assert out.startswith("1\n") and "pred 5" in out
    assert kpo("reward", "--kind", "kpo", "--gold", "5", input=b"").stdout == b"0\n"
    failure(kpo("reward", "--kind", "exact", "--gold", "1", check=False), "exact")


def test_data_check_and_errors(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"problem": "p", "answer": 3}\n{"prompt": "q", "answer": "x"}\n')
    out = kpo("data", "check", good).stdout.decode()
    assert "2 records" in out and "integer answers: 1 of 2" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "p", "answer": 3}\n{"problem": \n{"problem": "r"}\n')
    failure(kpo("data", "check", bad, check=False), f"{bad}:2:")
    out = kpo("data", "check", bad, "--skip-bad").stdout.decode()
    assert "1 records, 2 bad lines skipped" in out and f"{bad}:2:" in out
    failure(kpo("data", "check", tmp_path / "none.jsonl", check=False), "none.jsonl")
    failure(kpo("data", "bogus", check=False), "check FILE")


def test_data_arith_and_render(tmp_path):
    train = [json.loads(l) for l in kpo("data", "arith", "--count", 50, "--seed", 3,
                                        "--difficulty", 4).stdout.splitlines()]
    test = [json.loads(l) for l in kpo("data", "arith", "--split", "test", "--count", 50,
                                       "--seed", 3, "--difficulty", 4).stdout.splitlines()]
    assert len(train) == 50 and not {r["problem"] for r in train} & {r["problem"] for r in test}
    for r in train + test:
        assert eval(r["problem"][len("What is "):-1]) == int(r["answer"])
    f = tmp_path / "one.jsonl"
    f.write_text('{"problem": "What is 2+2?", "answer": "4"}\n')
    out = kpo("data", "render", f, "--prompt", "boxed", "--chat", "qwen3").stdout.decode()
    assert out == ("<|im_start|>user\nWhat is 2+2? Let's think step by step and output the final "
                   "answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n<think>\n\n"
                   "</think>\n\n\n")


def write_counts(path, rows):
    path.write_text("# correct samples\n" + "".join(f"{c} {n}\n" for c, n in rows))
    return path


def test_stats_count_files(tmp_path):
    a = [(10, 16), (3, 16), (16, 16), (0, 16), (8, 16), (12, 16), (1, 16)]
    b = [(9, 16), (3, 16), (15, 16), (0, 16), (7, 16), (12, 16), (0, 16)]
    r = [(12, 16), (5, 16), (16, 16), (2, 16), (9, 16), (14, 16), (4, 16)]
    fa, fb, fr = (write_counts(tmp_path / f"{n}.txt", rows) for n, rows in
                  (("a", a), ("b", b), ("r", r)))
    out = kpo("stats", fa, fb, fr, "--bootstrap", 2000, "--seed", 5).stdout.decode()
    d = [(ca - cb) / 16 for (ca, _), (cb, _) in zip(a, b)]
    t = statistics.mean(d) / (statistics.stdev(d) / math.sqrt(len(d)))
    assert f"t = {t:.3f}" in out and "df = 6" in out
    acc = lambda rows: statistics.mean(c / n for c, n in rows)
    gap = 100 * (acc(a) - acc(b)) / (acc(r) - acc(b))
    assert f"gap recovered: {gap:.1f}%" in out
    assert out == kpo("stats", fa, fb, fr, "--bootstrap", 2000, "--seed", 5).stdout.decode()
    # The accuracy form of the z-test keeps working.
    assert "z = 0.987" in kpo("stats", "--p1", "0.4859", "--n1", 8000, "--p2", "0.4781",
                              "--n2", 8000).stdout.decode()
    short = write_counts(tmp_path / "short.txt", a[:3])
    failure(kpo("stats", fa, short, check=False), "same problems")
    broken = tmp_path / "broken.txt"
    broken.write_text("1 16\n17 16\n")
    failure(kpo("stats", fa, broken, check=False), f"{broken}:2:")
    failure(kpo("stats", fa, check=False), "two count files")


def test_tokenizer_config_with_an_array_decoder(tmp_path):
    """Issue 17: "added_tokens_decoder": [...] crashed kpo tokenize (strtol
    of a missing key); now a clear failure naming the file and the key."""
    if not (TOKENIZER / "vocab.json").exists():
        pytest.skip(f"{TOKENIZER} is absent")
    tok = tmp_path / "tok"
    tok.mkdir()
    for name in ("vocab.json", "merges.txt"):
        (tok / name).symlink_to(TOKENIZER / name)
    (tok / "tokenizer_config.json").write_text(
        json.dumps({"added_tokens_decoder": [{"content": "<|endoftext|>", "special": True}]}))
    failure(kpo("tokenize", "--tokenizer", tok, input=b"hi", check=False),
            "tokenizer_config.json", '"added_tokens_decoder"', "not an object")


def test_stats_counts_that_overflow(tmp_path):
    """Issue 17: sample counts summing past 2^63 overflowed (UBSan: signed
    overflow; the report read "pass@4611686018427387904"); now refused."""
    big = write_counts(tmp_path / "big.txt", [(1, 2**62), (2, 2**62)])
    fine = write_counts(tmp_path / "fine.txt", [(1, 4), (2, 4)])
    # Each count is now range-checked as it is read (at most 2^30 samples a
    # problem), before any sum could overflow.
    failure(kpo("stats", big, fine, check=False), f"{big}:2: need 0 <= correct_count <= samples")
    failure(kpo("stats", fine, big, check=False), f"{big}:2: need 0 <= correct_count <= samples")
    failure(kpo("stats", fine, fine, big, check=False), f"{big}:")

