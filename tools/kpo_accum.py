"""Innovation-statistics accumulators as the run file stores them.

A row of `/innovation/accumulator` (and each 77-wide block of a row of
`/innovation/minibatch_accumulator`) is the flat form of kpo's `innov_stats`
(`src/filter/innov_stats.h`, `docs/filter.md`):

    0 count, 1 mean, 2-4 central sums M2, M3, M4 of delta, 5 max |delta|,
    6 clip count, 7 sum of gains, 8 sum of sigma_t, 9 sum of finite
    thresholds, 10 their count, 11-76 the 66 histogram slots of delta/sigma

This module merges rows exactly as kpo does (Pebay's pairwise update, the
same operation order as `innov_stats_merge_scalars`) and derives the figures
`kpo diag` prints, so any span of steps or mini-batches can be summarised
offline. Needs numpy only.
"""
import math

import numpy as np

FLAT_LEN = 77
HIST_SLOTS = 66
FIELDS = ("count", "mean", "m2", "m3", "m4", "max_abs", "clip_count", "gain_sum",
          "sigma_sum", "threshold_sum", "threshold_count")


def split_minibatches(row, minibatches):
    """One step's minibatch_accumulator row -> [minibatches, 77] array."""
    return np.asarray(row, dtype=np.float64).reshape(minibatches, FLAT_LEN)


def merge(a, b):
    """a (+) b: the accumulator of both token sets (a new array)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if b[0] == 0.0:
        return a.copy()
    if a[0] == 0.0:
        return b.copy()
    out = a.copy()
    out[:11] = _merge_scalars(a[:11], b[:11])
    out[11:] = a[11:] + b[11:]
    return out


def _merge_scalars(a, b):
    """Pebay (2008) eqs. 3.1-3.3 in kpo's operation order."""
    na, nb = a[0], b[0]
    n = na + nb
    d = b[1] - a[1]
    d_n = d / n
    d_n2 = d_n * d_n
    m2a, m3a, m2b, m3b = a[2], a[3], b[2], b[3]
    m4 = (a[4] + b[4] + d * d_n * d_n2 * na * nb * (na * na - na * nb + nb * nb)
          + 6.0 * d_n2 * (na * na * m2b + nb * nb * m2a) + 4.0 * d_n * (na * m3b - nb * m3a))
    m3 = m3a + m3b + d * d_n2 * na * nb * (na - nb) + 3.0 * d_n * (na * m2b - nb * m2a)
    m2 = m2a + m2b + d * d_n * na * nb
    out = a.copy()
    out[0], out[1], out[2], out[3], out[4] = n, a[1] + d_n * nb, m2, m3, m4
    out[5] = max(a[5], b[5])
    out[6:11] = a[6:11] + b[6:11]
    return out


def merge_rows(rows):
    """Merges accumulator rows in order (what `kpo diag` does for 'all')."""
    total = np.zeros(FLAT_LEN)
    for row in np.atleast_2d(np.asarray(rows, dtype=np.float64)):
        total = merge(total, row)
    return total


def derived(flat):
    """The statistics `kpo diag --csv` prints for one accumulator (NaN where
    undefined: no tokens, zero variance, no finite threshold)."""
    f = np.asarray(flat, dtype=np.float64)
    count, mean, m2, m4 = f[0], f[1], f[2], f[4]
    has = count > 0
    variance = m2 / count if has else math.nan
    return {
        "tokens": count,
        "mean_delta": mean if has else math.nan,
        "variance": variance,
        "std_delta": math.sqrt(variance) if has else math.nan,
        "kurtosis": count * m4 / (m2 * m2) if has and m2 != 0 else math.nan,
        "max_abs_delta": f[5] if has else math.nan,
        "clip_count": f[6],
        "clip_fraction": f[6] / count if has else math.nan,
        "mean_gain": f[7] / count if has else math.nan,
        "mean_sigma": f[8] / count if has else math.nan,
        "mean_threshold": f[9] / f[10] if f[10] > 0 else math.nan,
    }


def histogram(flat):
    """The 66 histogram slots of one accumulator (underflow, 64 bins, overflow)."""
    return np.asarray(flat, dtype=np.float64)[11:11 + HIST_SLOTS]
