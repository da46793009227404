"""Every per-step metric `kpo train` writes to run.h5 is documented, with its
unit, in docs/runfile.md, and every documented one is still written; the
progress line shows the phases of the step."""
import os
import re
from pathlib import Path

import h5py
import numpy as np

from conftest import run, write_config

SOURCE_ROOT = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
SECTION = "## Per-step metrics"


def documented_metrics():
    """The names in the first column of the metrics table of docs/runfile.md."""
    text = (SOURCE_ROOT / "docs" / "runfile.md").read_text()
    assert SECTION in text, f"docs/runfile.md has no '{SECTION}' section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2:
            names.update(re.findall(r"`([a-z0-9_]+)`", cells[1]))
    assert names, "the metrics table of docs/runfile.md lists no metric"
    return names


def test_every_metric_is_documented(tmp_path, tiny_model):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"steps": 1, "checkpoint_every": 0})
    result = run(["train", cfg])
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
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


def test_config_keys_documented_as_help_config_prints_them():
    """docs/train.md's key listing is `kpo train --help-config`, verbatim."""
    text = (SOURCE_ROOT / "docs" / "train.md").read_text()
    block = text.split("## Configuration keys", 1)[1].split("```", 2)[1]
    printed = run(["train", "--help-config"]).stdout
    assert block.strip("\n") == printed.strip("\n"), \
        "docs/train.md's key block differs from kpo train --help-config: paste the new output"
