"""A second, independent Qwen2 byte-level BPE encoder (Python, Debian's
python3-regex) that must agree with `kpo tokenize` on all of MATH-500."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import regex

SHARED = Path(os.environ.get("KPO_SHARED", "../shared"))
TOKENIZER = SHARED / "data" / "qwen_tokenizer"
MATH500 = SHARED / "data" / "math500.jsonl"
KPO = os.environ.get("KPO_BIN", "kpo")

PATTERN = regex.compile(
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def byte_alphabet():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class ReferenceBPE:
    """The textbook GPT-2 algorithm: merge every occurrence of the lowest-rank
    pair, left to right, until no ranked pair is left."""

    def __init__(self, directory):
        self.vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        lines = (directory / "merges.txt").read_text(encoding="utf-8").split("\n")
        pairs = [tuple(l.split(" ")) for l in lines[1:] if l]
        self.ranks = {p: r for r, p in enumerate(pairs)}
        self.alphabet = byte_alphabet()
        config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
        self.added = {v["content"]: int(k) for k, v in config["added_tokens_decoder"].items()}

    def bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            ranked = [(self.ranks.get((a, b), None), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            ranked = [(r, i) for r, i in ranked if r is not None]
            if not ranked:
                break
            best = min(ranked)[0]
            a, b = parts[min(ranked)[1]], parts[min(ranked)[1] + 1]
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
            del best
        return [self.vocab[p] for p in parts]

    def encode(self, text):
        ids = []
        for piece in PATTERN.findall(text):
            ids += self.bpe("".join(self.alphabet[b] for b in piece.encode("utf-8")))
        return ids


@pytest.fixture(scope="module")
def reference():
    if not (TOKENIZER / "vocab.json").exists():
        pytest.skip(f"SKIPPED: {TOKENIZER} is absent (the Qwen tokenizer files live in ../shared/data)")
    return ReferenceBPE(TOKENIZER)


def kpo_encode(texts):
    payload = b"".join(t.encode("utf-8") + b"\0" for t in texts)
    out = subprocess.run([KPO, "tokenize", "--tokenizer", str(TOKENIZER), "--no-special", "--nul"],
                         input=payload, capture_output=True, check=True).stdout.decode()
    return [[int(x) for x in line.split()] for line in out.split("\n")[:-1]]


def test_reference_known_ids(reference):
    assert reference.encode("Hello world") == [9707, 1879]
    assert reference.encode(" Hello world") == [21927, 1879]


def test_agrees_on_all_of_math500(reference):
    if not MATH500.exists():
        pytest.skip(f"SKIPPED: {MATH500} is absent")
    problems = [json.loads(l)["problem"] for l in MATH500.read_text(encoding="utf-8").splitlines()]
    assert len(problems) == 500
    ours = kpo_encode(problems)
    assert len(ours) == 500
    mismatches = [i for i, p in enumerate(problems) if reference.encode(p) != ours[i]]
    assert mismatches == [], f"{len(mismatches)} problems differ, first {mismatches[:5]}"


def test_agrees_on_hard_cases(reference):
    cases = ["12345 + 678 = 13023", "\\frac{1}{2}\\sqrt{x^2+1}", "数学题：求 x 的值。",
             "emoji 😀👍🏽 done", "a  b   c\n\n\nd \t\te", "   ", "\n", "I'll we've they'RE",
             "x\r\n\r\ny", "Ünïcödé ß ſ", "$$\\int_0^1 x\\,dx$$"]
    assert kpo_encode(cases) == [reference.encode(c) for c in cases]


def test_specials_are_single_ids(reference):
    out = subprocess.run([KPO, "tokenize", "--tokenizer", str(TOKENIZER)],
                         input=b"<|im_start|>user\nhi<|im_end|>\n", capture_output=True,
                         check=True).stdout.decode().split("\n")
    assert out[0].split()[0] == str(reference.added["<|im_start|>"])
    assert out[1].split()[-1] == str(reference.added["<|im_end|>"])
