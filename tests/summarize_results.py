#!/usr/bin/env python3
"""Counts test cases from meson's testlog.json and prints 'N passed, N failed'.

Each meson test is a cmocka program or a pytest file holding many cases; the
count that means something is the cases. A meson test that failed without
reporting any failed case (a crash, a timeout) counts as one failure."""
import json
import re
import sys

CMOCKA_OK = re.compile(r"^\[\s+OK\s+\]\s+\S")
CMOCKA_FAILED = re.compile(r"^\[\s+(FAILED|ERROR)\s+\]\s+\S")
CMOCKA_SKIPPED = re.compile(r"^\[\s+SKIPPED\s+\]\s+\S")
PYTEST_CASE = re.compile(r"::\S+\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")


def count(log_path):
    passed = failed = skipped = 0
    with open(log_path) as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            out = record.get("stdout") or ""
            p = f_ = s = 0
            for text in out.splitlines():
                if CMOCKA_OK.match(text):
                    p += 1
                elif CMOCKA_FAILED.match(text):
                    f_ += 1
                elif CMOCKA_SKIPPED.match(text):
                    s += 1
                else:
                    m = PYTEST_CASE.search(text)
                    if m:
                        kind = m.group(1)
                        if kind in ("PASSED", "XFAIL"):
                            p += 1
                        elif kind == "SKIPPED":
                            s += 1
                        else:
                            f_ += 1
            if record.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL") and f_ == 0:
                f_ = 1
            if record.get("result") == "SKIP" and p + f_ + s == 0:
                s = 1
            passed, failed, skipped = passed + p, failed + f_, skipped + s
    return passed, failed, skipped


if __name__ == "__main__":
    p, f, s = count(sys.argv[1] if len(sys.argv) > 1 else "build/meson-logs/testlog.json")
    print(f"{p} passed, {f} failed" + (f", {s} skipped" if s else ""))
    sys.exit(1 if f else 0)
