"""The paper's Tables 1-3 from run files and eval files, as pandas tables
rendered in Markdown or plain text.

    table1(evals)          avg@k and pass@k (%) per run and benchmark, from
                           the per-problem counts (docs/eval.md)
    table2(runs, steps)    kurtosis, max |delta|, clip fraction, mean gain and
                           threshold at selected steps (the /innovation datasets)
    table3(runs, evals)    Q, V, kappa and mode from each run's config; the
                           closed-form steady gain K_inf, the second token's
                           gain K_2 (the paper's "~2%") and the threshold
                           (kpo_gain); the measured mean gain, threshold and
                           clip fraction over the whole run (merged
                           accumulators); avg@k of the run's first benchmark

Run as a script, for jobs/analysis.sbatch:

    python3 tools/kpo_tables.py table1 LABEL=EVAL.h5 ...   text Table 1; a
        LABEL whose file does not exist gets a "(no eval.h5)" row
    python3 tools/kpo_tables.py avg EVAL.h5                avg@k (%) of its first benchmark
    python3 tools/kpo_tables.py benches EVAL.h5            its benchmarks, one a line

Needs h5py, numpy and pandas.
"""
import argparse
import math
import os
import sys

import numpy as np
import pandas as pd

import kpo_gain
import kpo_runs

PAPER_STEPS = (1, 5, 10, 15)
DASH = "–"


def _num(value, fmt):
    """Formats a number; NaN (or None) as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return format(value, fmt)


def bench_order(evals):
    """Benchmarks in first-seen order over the eval files."""
    names = []
    for e in evals:
        names += [b for b in e.benches if b not in names]
    return names


def table1(evals):
    """Rows: run; columns: (bench, avg@k) and (bench, pass@k), percent."""
    summary = kpo_runs.eval_summary(evals)
    benches = bench_order(evals)
    rows = {}
    for e in evals:
        row = {}
        for b in benches:
            hit = summary[(summary["run"] == e.label) & (summary["bench"] == b)]
            row[(b, "avg@k")] = hit["avg_at_k"].iloc[0] if len(hit) else math.nan
            row[(b, "pass@k")] = hit["pass_at_k"].iloc[0] if len(hit) else math.nan
        rows[e.label] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    if len(table.columns):
        table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.attrs["k"] = {b: int(summary[summary["bench"] == b]["k"].iloc[0]) for b in benches}
    return table


def select_steps(steps, wanted=None):
    """The steps of a run to tabulate: `wanted` where present; by default
    every step of a short run (<= 16 steps), else the paper's 1, 5, 10, 15
    and the last."""
    present = [int(s) for s in steps]
    if wanted:
        return [s for s in wanted if s in present]
    if len(present) <= 16:
        return present
    return sorted({s for s in PAPER_STEPS if s in present} | {present[-1]})


def _saturating(run):
    """False for a run whose filter does not saturate (mode none: no threshold)."""
    return run.config.get("filter.mode", "") != "none" and \
        np.isfinite(run.innovation.get("mean_threshold", np.array([np.nan]))).any()


def table2(runs, steps=None):
    """One row per run and selected step: the innovation statistics."""
    rows = []
    for r in runs:
        if "kurtosis" not in r.innovation or not np.nansum(r.innovation.get("count", [0])):
            continue
        index = {int(s): i for i, s in enumerate(r.steps)}
        saturating = _saturating(r)
        for s in select_steps(r.steps, steps):
            i = index[s]
            rows.append({"run": r.label, "step": s,
                         "kurtosis": r.innovation["kurtosis"][i],
                         "max_abs_delta": r.innovation["max_abs_delta"][i],
                         "clip_fraction": r.innovation["clip_fraction"][i] if saturating else math.nan,
                         "mean_gain": r.innovation["mean_gain"][i],
                         "mean_threshold": r.innovation["mean_threshold"][i]})
    return pd.DataFrame(rows, columns=["run", "step", "kurtosis", "max_abs_delta", "clip_fraction",
                                       "mean_gain", "mean_threshold"])


def _float(config, key, default):
    try:
        return float(config.get(key, default))
    except ValueError:
        return default


def _closed_form_threshold(mode, gain):
    if mode == "none":
        return math.nan
    return gain["threshold_sqrtv"] if mode == "sqrtv" else gain["threshold_sigma"]


def table3(runs, evals=()):
    """One row per filtered run (objective kpo): closed forms and measurements."""
    first_avg = {}
    summary = kpo_runs.eval_summary(list(evals))
    for e in evals:
        benches = list(e.benches)
        if benches:
            hit = summary[(summary["run"] == e.label) & (summary["bench"] == benches[0])]
            first_avg[e.label] = (benches[0], hit["avg_at_k"].iloc[0])
    rows = []
    for r in runs:
        if r.config.get("learner.objective", "kpo") != "kpo":
            continue
        q, v = _float(r.config, "filter.q", 1e-6), _float(r.config, "filter.v", 1.0)
        kappa, mode = _float(r.config, "filter.kappa", 3.0), r.config.get("filter.mode", "none")
        gain, measured = kpo_gain.summary(q, v, kappa), kpo_runs.merged_statistics(r)
        saturating = mode != "none"
        bench, avg = first_avg.get(r.label, (None, math.nan))
        rows.append({"run": r.label, "q": q, "v": v, "kappa": kappa if saturating else math.nan,
                     "mode": mode, "k_inf": gain["k_inf"], "k_2": gain["k_2"],
                     "threshold": _closed_form_threshold(mode, gain),
                     "measured_gain": measured["mean_gain"],
                     "measured_threshold": measured["mean_threshold"] if saturating else math.nan,
                     "clip_fraction": measured["clip_fraction"] if saturating else math.nan,
                     "bench": bench, "avg_at_k": avg})
    return pd.DataFrame(rows, columns=["run", "q", "v", "kappa", "mode", "k_inf", "k_2", "threshold",
                                       "measured_gain", "measured_threshold", "clip_fraction",
                                       "bench", "avg_at_k"])


def markdown(header, rows):
    """A Markdown table from a header list and rows of cell strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def table1_markdown(table):
    benches = list(dict.fromkeys(b for b, _ in table.columns))
    k = table.attrs.get("k", {})
    header = ["method"] + [f"{b} {m.replace('k', str(k.get(b, 'k')))}"
                           for b in benches for m in ("avg@k", "pass@k")]
    rows = [[label] + [_num(table.loc[label, (b, m)], ".2f") for b in benches for m in ("avg@k", "pass@k")]
            for label in table.index]
    return markdown(header, rows)


def table2_markdown(table):
    header = ["method", "step", "kurtosis", "max \\|delta\\|", "clip fraction", "mean K", "threshold"]
    rows = [[t.run, t.step, _num(t.kurtosis, ".2f"), _num(t.max_abs_delta, ".3g"),
             _num(t.clip_fraction, ".2e"), _num(t.mean_gain, ".4g"), _num(t.mean_threshold, ".3f")]
            for t in table.itertuples()]
    return markdown(header, rows)


def table3_markdown(table):
    header = ["configuration", "Q", "V", "kappa", "mode", "K_inf (%)", "K_2 (%)", "threshold",
              "measured mean K (%)", "measured threshold", "clip fraction", "avg@k (%)"]
    rows = [[t.run, _num(t.q, "g"), _num(t.v, "g"), _num(t.kappa, "g"), t.mode,
             _num(100 * t.k_inf, ".3g"), _num(100 * t.k_2, ".3g"), _num(t.threshold, ".3f"),
             _num(100 * t.measured_gain, ".3g"), _num(t.measured_threshold, ".3f"),
             _num(t.clip_fraction, ".2e"),
             _num(t.avg_at_k, ".2f") + (f" ({t.bench})" if t.bench else "")]
            for t in table.itertuples()]
    return markdown(header, rows)


def table1_text(labelled_paths):
    """Plain-text Table 1 for [(label, path)]; missing files get a row saying so."""
    present = [(lab, p) for lab, p in labelled_paths if os.path.exists(p)]
    if not present:
        return "(no eval file found: run jobs/eval.sbatch first)"
    evals = [kpo_runs.load_eval(p, lab) for lab, p in present]
    table, benches = table1(evals), bench_order(evals)
    lines = ["%-14s" % "method" + "".join(" %22s" % f"{b} avg/pass" for b in benches)]
    for label, path in labelled_paths:
        if not os.path.exists(path):
            lines.append("%-14s (no eval.h5)" % label)
            continue
        cells = [" / ".join(_num(table.loc[label, (b, m)], ".2f") for m in ("avg@k", "pass@k"))
                 for b in benches]
        lines.append("%-14s" % label + "".join(" %22s" % c for c in cells))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t1 = sub.add_parser("table1", help="text Table 1 from eval files")
    t1.add_argument("evals", nargs="+", help="PATH or LABEL=PATH")
    avg = sub.add_parser("avg", help="avg@k (%%) of an eval file's first benchmark")
    avg.add_argument("eval")
    names = sub.add_parser("benches", help="an eval file's benchmarks, one a line")
    names.add_argument("eval")
    args = parser.parse_args(argv)
    if args.command == "table1":
        print(table1_text(kpo_runs.assign_labels(args.evals)))
    elif args.command == "benches":
        print("\n".join(kpo_runs.load_eval(args.eval).benches))
    else:
        summary = kpo_runs.eval_summary([kpo_runs.load_eval(args.eval)])
        print(_num(summary["avg_at_k"].iloc[0] if len(summary) else math.nan, ".2f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
