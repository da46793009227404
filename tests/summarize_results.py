#!/usr/bin/env python3
"""Counts test cases from meson's testlog.json files and prints 'N passed, N failed'.

    summarize_results.py [TESTLOG.json ...] [--sanitizer-reports DIR]

Each meson test is a cmocka program or a pytest file holding many cases; the
count that means something is the cases. A meson test that failed without
reporting any failed case (a crash, a timeout) counts as one failure. Several
logs (the main build's and the ASan + UBSan build's) are summed into the one
final line, after a line per log; a log that is missing (its build failed)
counts as one failure.

--sanitizer-reports DIR names where the sanitized programs wrote their
reports (ASAN_OPTIONS/UBSAN_OPTIONS log_path): a test that expects kpo to fail
would pass over a leak or UB on that error path, so the directory is one more
case, passed when it is empty and failed (the reports printed) when not."""
import json
import os
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


def sanitizer_reports(directory):
    """The report files in directory (none when it does not exist), each printed."""
    if not os.path.isdir(directory):
        return []
    reports = sorted(os.path.join(directory, name) for name in os.listdir(directory)
                     if os.path.getsize(os.path.join(directory, name)) > 0)
    shown = 5
    for path in reports[:shown]:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        print(f"sanitizer report {path}:")
        for text in lines[:60]:
            print(f"    {text}")
        if len(lines) > 60:
            print(f"    ... {len(lines) - 60} more lines")
    if len(reports) > shown:
        print(f"... and {len(reports) - shown} more sanitizer reports in {directory}")
    return reports


def main(argv):
    logs, report_dirs = [], []
    args = iter(argv)
    for arg in args:
        if arg == "--sanitizer-reports":
            report_dirs.append(next(args, ""))
        else:
            logs.append(arg)
    if not logs and not report_dirs:
        logs = ["build/meson-logs/testlog.json"]
    total = [0, 0, 0]
    lines = []
    for log in logs:
        if os.path.exists(log):
            counts = count(log)
        else:
            counts = (0, 1, 0)
            print(f"{log}: missing (its build or test run did not finish): one failure")
        total = [a + b for a, b in zip(total, counts)]
        lines.append((log, counts))
    for directory in report_dirs:
        reports = sanitizer_reports(directory)
        counts = (0, 1, 0) if reports else (1, 0, 0)
        total = [a + b for a, b in zip(total, counts)]
        lines.append((f"{directory} ({len(reports)} sanitizer reports)", counts))
    if len(lines) > 1:
        for name, (p, f, s) in lines:
            print(f"  {name}: {p} passed, {f} failed" + (f", {s} skipped" if s else ""))
    p, f, s = total
    print(f"{p} passed, {f} failed" + (f", {s} skipped" if s else ""))
    return 1 if f else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
