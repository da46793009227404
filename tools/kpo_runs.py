"""Load kpo run files and eval files into pandas tables.

    import kpo_runs
    runs = kpo_runs.load_runs(["runs/kpo-weak/run.h5", "strong=other/run.h5"])
    kpo_runs.metrics_table(runs)      # run, step, one column per /metrics/<name>
    kpo_runs.innovation_table(runs)   # run, step, count, kurtosis, max_abs_delta, ...
    kpo_runs.minibatch_table(runs)    # run, step, minibatch, the same per mini-batch
    kpo_runs.histogram_table(runs)    # run, step, slot, low, high, count
    evals = kpo_runs.load_evals(["runs/kpo-weak/eval.h5"])
    kpo_runs.eval_table(evals)        # run, bench, problem_index, correct, samples
    kpo_runs.eval_summary(evals)      # run, bench, problems, k, avg_at_k, pass_at_k (%)

A run is labelled by the name of the directory holding its file
(`runs/kpo-weak/run.h5` -> `kpo-weak`), or by `LABEL=PATH`; labels that
would collide get the file's stem appended (`dir/stem`). Metric units come
from each dataset's `unit` (or `units`) attribute when the file records one,
else from the "Per-step metrics" table of docs/runfile.md
(`DataFrame.attrs["units"]`). Layouts: docs/runfile.md, docs/eval.md.

Run as a script it prints each table's shape and head, or writes them as
CSV files: `python3 tools/kpo_runs.py RUN.h5 ... [--eval EVAL.h5 ...] [--csv DIR]`.
Needs h5py, numpy and pandas.
"""
import argparse
import math
import os
import re
import sys
from dataclasses import dataclass, field

import h5py
import numpy as np
import pandas as pd

import kpo_accum

RUNFILE_DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "runfile.md")
INNOVATION_FIELDS = ("count", "mean", "variance", "kurtosis", "max_abs_delta", "clip_count",
                     "clip_fraction", "mean_gain", "mean_sigma", "mean_threshold")
CANONICAL_NAMES = ("run.h5", "eval.h5")


@dataclass
class Run:
    """One run file, read whole (the per-step datasets are small)."""
    label: str
    path: str
    attrs: dict
    steps: np.ndarray                       # [n_steps] int64
    metrics: dict                           # name -> [n_steps] float64
    units: dict                             # metric name -> unit text
    innovation: dict                        # field -> [n_steps] float64
    accumulator: np.ndarray                 # [n_steps, 77]
    histogram: np.ndarray                   # [n_steps, 66]
    bin_edges: np.ndarray                   # [65]
    minibatch_accumulator: np.ndarray = None  # [n_steps, M, 77] or None
    config: dict = field(default_factory=dict)  # "section.key" -> value text


@dataclass
class EvalFile:
    """One eval file: settings and per-benchmark per-problem counts."""
    label: str
    path: str
    attrs: dict
    benches: dict                           # name -> DataFrame(problem_index, correct, samples)
    bench_attrs: dict                       # name -> dict(k, n_problems, avg_at_k, pass_at_k, source)


def parse_spec(spec):
    """'LABEL=PATH' -> (LABEL, PATH); a plain path -> (None, PATH)."""
    if "=" in spec and not os.path.exists(spec):
        label, path = spec.split("=", 1)
        if label and "/" not in label:
            return label, path
    return None, spec


def default_label(path):
    """The directory's name (`runs/kpo-weak/run.h5` -> `kpo-weak`)."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return parent or os.path.splitext(os.path.basename(path))[0]


def assign_labels(specs):
    """[(label, path)] for specs, unique labels (collisions get `/stem`)."""
    parsed = [parse_spec(s) for s in specs]
    labels = [lab or default_label(p) for lab, p in parsed]
    out = []
    for (given, path), label in zip(parsed, labels):
        if given is None and labels.count(label) > 1:
            label = f"{label}/{os.path.splitext(os.path.basename(path))[0]}"
        out.append((label, path))
    return out


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _attrs(obj):
    return {k: (_text(v) if isinstance(v, (bytes, str)) else v) for k, v in obj.attrs.items()}


def parse_config(text):
    """The resolved config attribute -> {"section.key": "value"}.

    Reads `key = value  ; comment` lines (kpo train) and the space-separated
    `key=value` pairs `kpo simulate` writes on one line."""
    values, section = {}, ""
    for line in (text or "").splitlines():
        line = line.strip()
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            section = m.group(1).strip()
            continue
        body = re.split(r"\s;", line, maxsplit=1)[0].strip()
        if not body or body.startswith(";") or "=" not in body:
            continue
        if re.match(r"^[\w.]+\s*=\s*\S*$", body) or " = " in body:
            key, value = body.split("=", 1)
            values[f"{section}.{key.strip()}"] = value.strip()
        else:
            for pair in body.split():
                if "=" in pair:
                    key, value = pair.split("=", 1)
                    values[f"{section}.{key}"] = value
    return values


def doc_units(path=RUNFILE_DOC):
    """Metric -> unit from the "Per-step metrics" table of docs/runfile.md."""
    units = {}
    if not os.path.exists(path):
        return units
    with open(path, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Per-step metrics", 1)[-1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            units[name] = cells[1]
    return units


def _units(group, names):
    fallback = doc_units()
    units = {}
    for name in names:
        a = group[name].attrs
        recorded = a.get("unit", a.get("units"))
        units[name] = _text(recorded) if recorded is not None else fallback.get(name, "")
    return units


def _read_minibatches(f):
    if "innovation/minibatch_accumulator" not in f:
        return None
    d = f["innovation/minibatch_accumulator"]
    m = int(d.attrs.get("minibatches", d.shape[1] // kpo_accum.FLAT_LEN))
    return d[:].reshape(d.shape[0], m, kpo_accum.FLAT_LEN)


def load_run(path, label=None):
    """Reads one run file (format kpo-run)."""
    with h5py.File(path, "r") as f:
        attrs = _attrs(f)
        if attrs.get("format") != "kpo-run":
            raise ValueError(f"{path}: not a kpo run file (format {attrs.get('format')!r})")
        steps = f["steps/step"][:]
        n = len(steps)
        metrics_group = f["metrics"] if "metrics" in f else {}
        names = sorted(metrics_group)
        metrics = {k: metrics_group[k][:n] for k in names}
        units = _units(metrics_group, names) if names else {}
        innov = {k: f["innovation"][k][:n] for k in INNOVATION_FIELDS if k in f["innovation"]}
        hist = f["innovation/histogram"]
        return Run(label or default_label(path), path, attrs, steps, metrics, units, innov,
                   f["innovation/accumulator"][:n], hist[:n], hist.attrs["bin_edges"][:],
                   _read_minibatches(f), parse_config(attrs.get("config", "")))


def load_runs(specs):
    """Run for each 'PATH' or 'LABEL=PATH', labelled (assign_labels)."""
    return [load_run(path, label) for label, path in assign_labels(specs)]


def load_eval(path, label=None):
    """Reads one eval file (format kpo-eval)."""
    with h5py.File(path, "r") as f:
        attrs = _attrs(f)
        if attrs.get("format") != "kpo-eval":
            raise ValueError(f"{path}: not a kpo eval file (format {attrs.get('format')!r})")
        benches, bench_attrs = {}, {}
        for name in sorted(f["bench"]):
            g = f["bench"][name]
            benches[name] = pd.DataFrame({c: g[c][:] for c in ("problem_index", "correct", "samples")})
            bench_attrs[name] = _attrs(g)
    return EvalFile(label or default_label(path), path, attrs, benches, bench_attrs)


def load_evals(specs):
    """EvalFile for each 'PATH' or 'LABEL=PATH'."""
    return [load_eval(path, label) for label, path in assign_labels(specs)]


def metrics_table(runs):
    """One row per run and step: run, step, then every /metrics/<name>
    (NaN where a run lacks it). attrs["units"]: metric -> unit."""
    frames, units = [], {}
    for r in runs:
        frame = pd.DataFrame({"run": r.label, "step": r.steps, **r.metrics})
        frames.append(frame)
        units.update({k: v for k, v in r.units.items() if v or k not in units})
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    table.attrs["units"] = units
    return table


def innovation_table(runs):
    """One row per run and step: the /innovation/<field> per-step datasets."""
    frames = [pd.DataFrame({"run": r.label, "step": r.steps, **r.innovation}) for r in runs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def minibatch_table(runs):
    """One row per run, step and mini-batch (1 = on-policy): the statistics
    of each mini-batch's accumulator (kpo_accum.derived)."""
    rows = []
    for r in runs:
        if r.minibatch_accumulator is None:
            continue
        for step, blocks in zip(r.steps, r.minibatch_accumulator):
            for k, flat in enumerate(blocks, start=1):
                rows.append({"run": r.label, "step": int(step), "minibatch": k,
                             **kpo_accum.derived(flat)})
    return pd.DataFrame(rows)


def merged_statistics(run, steps=None):
    """kpo_accum.derived over the merged accumulator rows of `steps`
    (all steps when None): the whole run as `kpo diag` shows it ('all')."""
    mask = np.ones(len(run.steps), bool) if steps is None else np.isin(run.steps, list(steps))
    return kpo_accum.derived(kpo_accum.merge_rows(run.accumulator[mask]))


def histogram_table(runs):
    """One row per run, step and histogram slot: slot 0 underflow (low
    -inf), 1..64 the bins [low, high), 65 overflow (high +inf)."""
    frames = []
    for r in runs:
        edges = r.bin_edges
        low = np.concatenate([[-np.inf], edges])
        high = np.concatenate([edges, [np.inf]])
        n_slots = r.histogram.shape[1]
        frames.append(pd.DataFrame({
            "run": r.label, "step": np.repeat(r.steps, n_slots),
            "slot": np.tile(np.arange(n_slots), len(r.steps)),
            "low": np.tile(low, len(r.steps)), "high": np.tile(high, len(r.steps)),
            "count": r.histogram.reshape(-1)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def eval_table(evals):
    """One row per eval file, benchmark and problem: the per-problem counts."""
    frames = [frame.assign(run=e.label, bench=name)
              for e in evals for name, frame in e.benches.items()]
    if not frames:
        return pd.DataFrame(columns=["run", "bench", "problem_index", "correct", "samples"])
    table = pd.concat(frames, ignore_index=True)
    return table[["run", "bench", "problem_index", "correct", "samples"]]


def pass_at_k(n, c, k):
    """Chen et al. (2021): 1 - C(n - c, k) / C(n, k), for n >= k samples."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def eval_summary(evals):
    """One row per eval file and benchmark: problems, k, avg@k and pass@k in
    percent, computed from the per-problem counts (docs/eval.md)."""
    rows = []
    for e in evals:
        for name, frame in e.benches.items():
            k = int(e.bench_attrs[name].get("k", frame["samples"].min()))
            accuracy = (frame["correct"] / frame["samples"]).mean()
            passed = np.mean([pass_at_k(int(n), int(c), k)
                              for n, c in zip(frame["samples"], frame["correct"])])
            rows.append({"run": e.label, "bench": name, "problems": len(frame), "k": k,
                         "avg_at_k": 100 * accuracy, "pass_at_k": 100 * passed})
    return pd.DataFrame(rows, columns=["run", "bench", "problems", "k", "avg_at_k", "pass_at_k"])


def _write_tables(tables, directory):
    os.makedirs(directory, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(os.path.join(directory, f"{name}.csv"), index=False)
        print(f"wrote {os.path.join(directory, name + '.csv')} ({len(table)} rows)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="run files, PATH or LABEL=PATH")
    parser.add_argument("--eval", action="append", default=[], help="eval file (repeatable)")
    parser.add_argument("--csv", metavar="DIR", help="write every table as DIR/<table>.csv")
    args = parser.parse_args(argv)
    runs, evals = load_runs(args.runs), load_evals(args.eval)
    tables = {"metrics": metrics_table(runs), "innovation": innovation_table(runs),
              "minibatches": minibatch_table(runs), "histogram": histogram_table(runs),
              "eval_problems": eval_table(evals), "eval_summary": eval_summary(evals)}
    if args.csv:
        _write_tables(tables, args.csv)
        return 0
    for name, table in tables.items():
        print(f"== {name}: {table.shape[0]} rows x {table.shape[1]} columns")
        if len(table):
            print(table.head().to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
