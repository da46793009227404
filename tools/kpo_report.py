"""A one-page report of a set of kpo runs: the paper's Tables 1-3 and
Figure 2, plus training curves, innovation histograms and per-mini-batch
statistics, as OUT/report.md with the figures beside it (PNG and SVG).

    python3 tools/kpo_report.py --out DIR [RUN.h5 | LABEL=RUN.h5 ...] \
        [--eval EVAL.h5 | --eval LABEL=EVAL.h5 ...] [--runs-dir RUNS [--conditions "A B"]] \
        [--steps 1,5,10,15] [--kpo BIN --baseline LABEL [--reference LABEL]] [--title TEXT]

--runs-dir takes RUNS/<condition>/run.h5 and RUNS/<condition>/eval.h5 for
each condition (every subdirectory when --conditions is not given), labelled
by the condition. An eval file pairs with the run of the same label (Table
3's avg@k). With --kpo and --baseline the report adds `kpo stats` of every
other eval file against the baseline's (paired t-test, bootstrap, share of
the gap to --reference recovered). Needs matplotlib, h5py, numpy, pandas.
"""
import argparse
import datetime
import os
import subprocess
import sys

import kpo_plots
import kpo_runs
import kpo_tables

FIGURES = (("figure2", "Figure 2: innovation clip fraction and max |delta| against the threshold"),
           ("training", "Training curves"),
           ("histograms", "Innovation histograms (delta / sigma_t) per step"),
           ("minibatches", "Kurtosis and max |delta| per mini-batch"))


def discover(runs_dir, conditions=None):
    """(run specs, eval specs) under RUNS/<condition>/, labelled by condition."""
    if not conditions:
        conditions = sorted(d for d in os.listdir(runs_dir) if os.path.isdir(os.path.join(runs_dir, d)))
    run_specs, eval_specs = [], []
    for c in conditions:
        for name, specs in (("run.h5", run_specs), ("eval.h5", eval_specs)):
            path = os.path.join(runs_dir, c, name)
            if os.path.exists(path):
                specs.append(f"{c}={path}")
    return run_specs, eval_specs


def kpo_stats(kpo, evals, baseline, reference=None):
    """`kpo stats` of each eval file against the baseline's, as text blocks."""
    paths = {e.label: e.path for e in evals}
    if baseline not in paths:
        return [f"(no eval file labelled {baseline}: statistics skipped)"]
    blocks = []
    for e in evals:
        if e.label == baseline:
            continue
        cmd = [kpo, "stats", e.path, paths[baseline]]
        if reference in paths and reference not in (e.label, baseline):
            cmd.append(paths[reference])
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 and len(cmd) == 5:  # no gap to the reference
            cmd = cmd[:4]
            result = subprocess.run(cmd, capture_output=True, text=True)
        blocks.append(f"{e.label} vs {baseline}: $ {' '.join(cmd)}\n{result.stdout}{result.stderr}")
    return blocks


def sources_section(runs, evals):
    lines = ["## Sources", ""]
    lines += [f"- run `{r.label}`: `{r.path}` ({len(r.steps)} steps; "
              f"{r.attrs.get('build_info', '')})" for r in runs]
    lines += [f"- eval `{e.label}`: `{e.path}` (k = {e.attrs.get('k')}, top_p = {e.attrs.get('top_p')}, "
              f"device {e.attrs.get('device')})" for e in evals]
    return lines


def tables_section(runs, evals, steps, stats_blocks):
    lines = ["## Table 1: avg@k / pass@k (%) per benchmark", ""]
    lines += [kpo_tables.table1_markdown(kpo_tables.table1(evals)) if evals else "(no eval files)", ""]
    for block in stats_blocks:
        lines += ["```", block.rstrip(), "```", ""]
    lines += ["## Table 2: innovation statistics at selected steps", "",
              "Clip fraction `–` where the filter does not saturate (mode none).", ""]
    table2 = kpo_tables.table2(runs, steps)
    lines += [kpo_tables.table2_markdown(table2) if len(table2) else "(no innovation statistics)", ""]
    lines += ["## Table 3: Kalman gain, threshold and clip fraction", "",
              "K_inf, K_2 and threshold: closed forms from each run's Q, V, kappa "
              "(`kpo gain`; threshold kappa sigma_inf, or kappa sqrt(V) in mode sqrtv); "
              "measured: over the whole run (accumulators merged).", ""]
    table3 = kpo_tables.table3(runs, evals)
    lines += [kpo_tables.table3_markdown(table3) if len(table3) else "(no filtered runs)", ""]
    return lines


def figures_section(runs, out):
    lines = []
    if not runs:
        return ["(no run files: no figures)"]
    for name, drawn in kpo_plots.draw_all(runs, out).items():
        title = dict(FIGURES)[name]
        lines += [f"## {title}", "", f"![{title}]({name}.png)", "",
                  f"[SVG]({os.path.basename(drawn['files'][1])})", ""]
    return lines


def build_report(runs, evals, out, steps=None, stats_blocks=(), title="kpo runs"):
    """Writes OUT/report.md and the figures; returns the Markdown text."""
    os.makedirs(out, exist_ok=True)
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"# {title}", "", f"Generated {created} by tools/kpo_report.py.", ""]
    lines += sources_section(runs, evals) + [""]
    lines += tables_section(runs, evals, steps, stats_blocks)
    lines += figures_section(runs, out)
    text = "\n".join(lines)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return text


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="run files, PATH or LABEL=PATH")
    parser.add_argument("--eval", action="append", default=[], help="eval file (repeatable)")
    parser.add_argument("--runs-dir", help="take RUNS/<condition>/{run,eval}.h5")
    parser.add_argument("--conditions", help="space-separated conditions for --runs-dir")
    parser.add_argument("--out", required=True, help="directory for report.md and the figures")
    parser.add_argument("--steps", help="Table 2's steps, e.g. 1,5,10,15 (default: see kpo_tables)")
    parser.add_argument("--kpo", help="the kpo binary, for kpo stats")
    parser.add_argument("--baseline", help="eval label every other is compared with")
    parser.add_argument("--reference", help="eval label whose gap to the baseline is measured")
    parser.add_argument("--title", default="kpo runs")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    run_specs, eval_specs = list(args.runs), list(args.eval)
    if args.runs_dir:
        found_runs, found_evals = discover(args.runs_dir, (args.conditions or "").split())
        run_specs, eval_specs = run_specs + found_runs, eval_specs + found_evals
    runs, evals = kpo_runs.load_runs(run_specs), kpo_runs.load_evals(eval_specs)
    steps = [int(s) for s in args.steps.split(",")] if args.steps and args.steps != "all" else None
    stats = kpo_stats(args.kpo, evals, args.baseline, args.reference) if args.kpo and args.baseline else []
    build_report(runs, evals, args.out, steps, stats, args.title)
    print(f"report: {os.path.join(args.out, 'report.md')} ({len(runs)} runs, {len(evals)} eval files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
