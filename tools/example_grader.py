#!/usr/bin/env python3
"""An example grader for kpo's `program` reward (docs/text.md, "program").

kpo starts this once and keeps it running. For each response it writes one
JSON line to our stdin:

    {"response": "...", "gold": "...", "problem": "..." or null}

and reads exactly one line back from our stdout, either a bare number (the
score) or an object:

    {"score": 1.0, "correct": true, "pred": "42"}

This grader is a plain exact match without sympy: the prediction is the
last `\\boxed{...}` of the response, else the text after its last
`Answer:`; prediction and gold are normalised (spaces, `$`, a trailing
period, `\\left`/`\\right`, `\\dfrac`/`\\tfrac` spelled `\\frac`, thousands
commas) and compared as strings, and as numbers when both read as numbers.
A correct answer scores 1, anything else 0.

Rules for writing your own:
  * answer every request with exactly one line and flush it (print(...,
    flush=True)); kpo waits at most the timeout (30 s by default) per answer;
  * write diagnostics to stderr, which reaches kpo's stderr unchanged;
    anything else on stdout is read as the answer and fails the run;
  * exit when stdin ends: that is kpo saying it is done.

Try it:  echo 'so \\boxed{4}' | kpo reward --kind program --gold 4 \\
             --program "python3 tools/example_grader.py" --explain
"""
import json
import re
import sys


def last_boxed(text):
    """The content of the last \\boxed{...}, braces balanced, or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def extract(response):
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    matches = re.findall(r"(?i)answer\s*:\s*([^\n]+)", response)
    return matches[-1] if matches else None


def normalise(text):
    text = text.strip()
    for a, b in (("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
                 ("$", ""), (" ", "")):
        text = text.replace(a, b)
    text = text.rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    return text


def as_number(text):
    try:
        return float(text)
    except ValueError:
        return None


def grade(response, gold):
    raw = extract(response)
    if raw is None:
        return {"score": 0.0, "correct": False, "pred": "", "extracted": False}
    pred, truth = normalise(raw), normalise(gold)
    correct = pred == truth
    if not correct:
        a, b = as_number(pred), as_number(truth)
        correct = a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))
    return {"score": 1.0 if correct else 0.0, "correct": correct, "pred": pred}


def main():
    # Bytes in, text decoded leniently: a sampled response may hold invalid UTF-8.
    for line in sys.stdin.buffer:
        request = json.loads(line.decode("utf-8", errors="replace"))
        answer = grade(request["response"], str(request["gold"]))
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
