"""Figures of kpo runs, as PNG and SVG (matplotlib's Agg backend).

Every function takes a list of kpo_runs.Run (drawn side by side, named by
their labels) and an output stem, writes STEM.png and STEM.svg, and returns
what it drew: {run label: {series name: numpy array}} (plus "files"), so
tests can hold the picture to the file's numbers.

    figure2(runs, stem)          the paper's Figure 2: (a) clip fraction per
                                 step, (b) max |delta| per step against the
                                 threshold kappa sigma_t (mean per step)
    training_curves(runs, stem)  reward, accuracy, response length, entropy,
                                 loss, grad norm, per-phase time per step
    histogram_heatmap(runs, stem) delta/sigma histogram per step, one panel
                                 per run (log colour scale, empty cells blank)
    minibatch_stats(runs, stem)  kurtosis and max |delta| per mini-batch

Run as a script: `python3 tools/kpo_plots.py RUN.h5 [LABEL=RUN.h5 ...] --out DIR`
draws all four into DIR. Needs matplotlib, h5py, numpy and pandas.
"""
import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import kpo_runs  # noqa: E402

TRAINING_PANELS = (("reward_mean", "reward"), ("accuracy", "accuracy"),
                   ("response_length_mean", "response length"), ("entropy_mean", "entropy"),
                   ("loss", "loss"), ("grad_norm_mean", "grad norm"))
TIME_PHASES = ("time_rollout", "time_old_logprobs", "time_learn", "time_sync")
PHASE_STYLES = ("-", "--", ":", "-.")


def save(fig, stem):
    """Writes STEM.png and STEM.svg; returns their paths."""
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    paths = [f"{stem}.png", f"{stem}.svg"]
    fig.savefig(paths[0], dpi=120, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _colors(runs):
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {r.label: cycle[i % len(cycle)] for i, r in enumerate(runs)}


def _finish(ax, title, ylabel):
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def figure2(runs, stem):
    """(a) clip fraction per step; (b) max |delta| and threshold per step."""
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    colors, drawn = _colors(runs), {}
    for r in runs:
        d = {"step": r.steps, "clip_fraction": r.innovation["clip_fraction"],
             "max_abs_delta": r.innovation["max_abs_delta"],
             "threshold": r.innovation["mean_threshold"]}
        c = colors[r.label]
        ax_a.plot(d["step"], d["clip_fraction"], "o-", color=c, label=r.label)
        ax_b.plot(d["step"], d["max_abs_delta"], "o-", color=c, label=f"{r.label} max |delta|")
        if np.isfinite(d["threshold"]).any():
            ax_b.plot(d["step"], d["threshold"], "--", color=c, label=f"{r.label} threshold")
        drawn[r.label] = d
    ax_a.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    _finish(ax_a, "(a) innovation clip fraction", "clipped tokens / tokens")
    _finish(ax_b, "(b) max |delta| against the threshold kappa sigma_t", "|delta|")
    drawn["files"] = save(fig, stem)
    return drawn


def _unit_label(runs, name, title):
    unit = next((r.units.get(name) for r in runs if r.units.get(name)), "")
    return f"{title} ({unit})" if unit else title


def _series(run, name):
    values = run.metrics.get(name)
    return None if values is None or not np.isfinite(values).any() else values


def training_curves(runs, stem):
    """One panel per training metric and one for the per-phase times."""
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), layout="constrained")
    colors, drawn = _colors(runs), {r.label: {"step": r.steps} for r in runs}
    for ax, (name, title) in zip(axes.flat, TRAINING_PANELS):
        for r in runs:
            values = _series(r, name)
            if values is not None:
                ax.plot(r.steps, values, "o-", ms=3, color=colors[r.label], label=r.label)
                drawn[r.label][name] = values
        if not ax.lines:
            ax.text(0.5, 0.5, "not recorded", ha="center", transform=ax.transAxes)
        _finish(ax, title, _unit_label(runs, name, name))
    time_ax, legend_ax = axes.flat[len(TRAINING_PANELS)], axes.flat[-1]
    _time_panel(time_ax, runs, colors, drawn)
    legend_ax.axis("off")
    if time_ax.get_legend() is not None:  # phases x runs: the spare panel holds the key
        time_ax.get_legend().remove()
        legend_ax.legend(*time_ax.get_legend_handles_labels(), loc="center left", fontsize=8,
                         title="time per phase")
    drawn["files"] = save(fig, stem)
    return drawn


def _time_panel(ax, runs, colors, drawn):
    """Phases as line styles, runs as colours."""
    for r in runs:
        for phase, style in zip(TIME_PHASES, PHASE_STYLES):
            values = _series(r, phase)
            if values is not None:
                label = f"{r.label} {phase.removeprefix('time_')}"
                ax.plot(r.steps, values, style, color=colors[r.label], label=label)
                drawn[r.label][phase] = values
    if not ax.lines:
        ax.text(0.5, 0.5, "not recorded", ha="center", transform=ax.transAxes)
    _finish(ax, "time per phase", "s")


def _slot_edges(bin_edges):
    """y edges of the 66 slots: under- and overflow as bands one bin wide."""
    width = bin_edges[1] - bin_edges[0]
    return np.concatenate([[bin_edges[0] - width], bin_edges, [bin_edges[-1] + width]])


def histogram_heatmap(runs, stem):
    """Counts of delta/sigma per step and slot, one panel per run."""
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs) + 1, 4), squeeze=False,
                             layout="constrained")
    drawn = {}
    positive = [r.histogram[r.histogram > 0] for r in runs]
    top = max([p.max() for p in positive if p.size] + [1.0])
    norm = LogNorm(vmin=1.0, vmax=max(top, 1.0 + 1e-9))
    mesh = None
    for ax, r in zip(axes[0], runs):
        counts = r.histogram
        x_edges = np.concatenate([r.steps - 0.5, [r.steps[-1] + 0.5]]) if len(r.steps) else [0, 1]
        shown = np.ma.masked_less_equal(counts.T, 0)
        mesh = ax.pcolormesh(x_edges, _slot_edges(r.bin_edges), shown, norm=norm, cmap="viridis")
        ax.set_title(f"{r.label}: delta / sigma_t per step", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("delta / sigma_t (outer bands: under/overflow)")
        drawn[r.label] = {"step": r.steps, "counts": counts, "bin_edges": r.bin_edges}
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes[0]), label="tokens")
    drawn["files"] = save(fig, stem)
    return drawn


def minibatch_stats(runs, stem):
    """Kurtosis and max |delta| of every mini-batch, at step + (k-1)/M."""
    fig, (ax_k, ax_m) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    colors, drawn = _colors(runs), {}
    table = kpo_runs.minibatch_table(runs)
    for r in runs:
        if table.empty or r.label not in set(table["run"]):
            continue
        rows = table[table["run"] == r.label]
        m = rows["minibatch"].max()
        x = rows["step"].to_numpy() + (rows["minibatch"].to_numpy() - 1) / m
        d = {"x": x, "step": rows["step"].to_numpy(), "minibatch": rows["minibatch"].to_numpy(),
             "kurtosis": rows["kurtosis"].to_numpy(), "max_abs_delta": rows["max_abs_delta"].to_numpy()}
        ax_k.plot(x, d["kurtosis"], "o-", ms=3, color=colors[r.label], label=r.label)
        ax_m.plot(x, d["max_abs_delta"], "o-", ms=3, color=colors[r.label], label=r.label)
        drawn[r.label] = d
    for ax in (ax_k, ax_m):
        if not ax.lines:
            ax.text(0.5, 0.5, "no per-mini-batch statistics", ha="center", transform=ax.transAxes)
    _finish(ax_k, "kurtosis per mini-batch (step + (k-1)/M)", "Pearson kurtosis (Gaussian 3)")
    _finish(ax_m, "max |delta| per mini-batch", "|delta|")
    drawn["files"] = save(fig, stem)
    return drawn


def draw_all(runs, directory):
    """All four figures into DIRECTORY; returns {figure name: drawn}."""
    return {"figure2": figure2(runs, os.path.join(directory, "figure2")),
            "training": training_curves(runs, os.path.join(directory, "training")),
            "histograms": histogram_heatmap(runs, os.path.join(directory, "histograms")),
            "minibatches": minibatch_stats(runs, os.path.join(directory, "minibatches"))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run files, PATH or LABEL=PATH")
    parser.add_argument("--out", required=True, help="directory for the figures")
    args = parser.parse_args(argv)
    for name, drawn in draw_all(kpo_runs.load_runs(args.runs), args.out).items():
        print(f"{name}: {' '.join(drawn['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
