"""Every per-step metric `kpo train` writes to run.h5 is documented, with its
unit, in docs/runfile.md, and every documented one is still written; kpo's
own table of units (src/io/metric_units.c, `kpo diag --list-metrics`) says
the same, and `kpo diag --metrics` exports each series with that unit; the
progress line shows the phases of the step."""
import json
import math
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import run, write_config

SOURCE_ROOT = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
SECTION = "## Per-step metrics"


def documented_units():
    """Name -> unit from the metrics table of docs/runfile.md (first and
    second column)."""
    text = (SOURCE_ROOT / "docs" / "runfile.md").read_text()
    assert SECTION in text, f"docs/runfile.md has no '{SECTION}' section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    units = {}
    for line in section.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 3:
            for name in re.findall(r"`([a-z0-9_]+)`", cells[1]):
                units[name] = cells[2].strip()
    assert units, "the metrics table of docs/runfile.md lists no metric"
    return units


def documented_metrics():
    """The names in the first column of the metrics table of docs/runfile.md."""
    return set(documented_units())


def kpo_table():
    """`kpo diag --list-metrics --csv`: metric -> (unit, writers)."""
    lines = run(["diag", "--list-metrics", "--csv"]).stdout.strip().splitlines()
    assert lines[0] == "metric,unit,writers,meaning"
    table = {}
    for line in lines[1:]:
        name, unit, writers = line.split(",", 3)[:3]
        table[name] = (unit.strip('"'), writers.split())
    return table


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory, tiny_model):
    d = tmp_path_factory.mktemp("metricsdoc")
    cfg = write_config(d / "c.ini", tiny_model, d / "run", run={"steps": 1, "checkpoint_every": 0})
    result = run(["train", cfg])
    return d / "run" / "run.h5", result


def test_every_metric_is_documented(one_step_run):
    path, result = one_step_run
    with h5py.File(path, "r") as f:
        written = set(f["metrics"].keys())
        gpu_peak = f["metrics/gpu_memory_peak_gib"][:] if "gpu_memory_peak_gib" in f["metrics"] \
            else None
    documented = documented_metrics()
    missing = sorted(written - documented)
    assert not missing, f"written to run.h5 but not in docs/runfile.md's table: {missing}"
    stale = sorted(documented - written)
    assert not stale, f"in docs/runfile.md's table but not written by kpo train: {stale}"
    # On the cpu there is no GPU memory to report: 0, not NaN or garbage.
    assert gpu_peak is not None and np.array_equal(gpu_peak, [0.0])
    line = next(li for li in result.stdout.splitlines() if li.startswith("step   1/1"))
    assert re.search(r"\d+\.\ds \[roll \d+\.\d logp \d+\.\d learn \d+\.\d sync \d+\.\d\]", line), line
    assert "GiB" not in line, f"a cpu run has no GPU memory to show: {line}"


def test_kpo_table_agrees_with_the_doc_and_the_run(one_step_run):
    """src/io/metric_units.c's kpo-train metrics are docs/runfile.md's table,
    unit for unit, and exactly what kpo train writes."""
    path, _ = one_step_run
    table, doc = kpo_table(), documented_units()
    train = {name: unit for name, (unit, writers) in table.items() if "train" in writers}
    assert sorted(set(train) - set(doc)) == [], "in kpo's table, not in docs/runfile.md"
    assert sorted(set(doc) - set(train)) == [], "in docs/runfile.md, not in kpo's table"
    differ = {n: (train[n], doc[n]) for n in train if train[n] != doc[n]}
    assert not differ, f"units differ (kpo's table, docs/runfile.md): {differ}"
    with h5py.File(path, "r") as f:
        assert set(f["metrics"].keys()) == set(train)


def test_diag_metrics_exports_every_series_with_its_unit(one_step_run):
    path, _ = one_step_run
    doc = documented_units()
    lines = run(["diag", "--metrics", "--csv", path]).stdout.strip().splitlines()
    assert lines[0] == "run,step,metric,value,unit"
    rows = {}
    for line in lines[1:]:
        label, step, name, value, unit = line.split(",", 4)
        rows[(int(step), name)] = (label, float(value), unit.strip('"'))
    records = [json.loads(li) for li in run(["diag", "--metrics", "--jsonl", path]).stdout
               .splitlines()]
    with h5py.File(path, "r") as f:
        steps = f["steps/step"][:]
        names = sorted(f["metrics"].keys())
        assert len(rows) == len(records) == len(steps) * len(names)
        for name in names:
            for step, value in zip(steps, f["metrics"][name][:]):
                label, got, unit = rows[(int(step), name)]
                assert label == "run", "labelled by the run's directory"
                assert got == value or (math.isnan(got) and math.isnan(value)), name
                assert unit == doc[name], (name, unit, doc[name])
    for rec in records:
        label, got, unit = rows[(rec["step"], rec["metric"])]
        assert rec["unit"] == unit and rec["run"] == label
        assert rec["value"] == got or (rec["value"] is None and math.isnan(got))


def test_config_keys_documented_as_help_config_prints_them():
    """docs/train.md's key listing is `kpo train --help-config`, verbatim."""
    text = (SOURCE_ROOT / "docs" / "train.md").read_text()
    block = text.split("## Configuration keys", 1)[1].split("```", 2)[1]
    printed = run(["train", "--help-config"]).stdout
    assert block.strip("\n") == printed.strip("\n"), \
        "docs/train.md's key block differs from kpo train --help-config: paste the new output"
