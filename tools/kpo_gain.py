"""Closed forms of the random-walk Kalman filter's gain (the paper's Table 3).

The same formulas as `src/filter/gain.c` and `kpo gain` (`docs/filter.md`):
only q = Q/V and P0/V matter for the gain,

    K_inf = 2q / (q + sqrt(q^2 + 4q))          steady-state gain
    M     = (Q + sqrt(Q^2 + 4 Q V)) / 2        steady prior variance P_pred
    sigma_inf = sqrt(M + V)                    steady innovation sigma
    thresholds: kappa * sigma_inf (mode sigma), kappa * sqrt(V) (mode sqrtv)

and the transient K_t from P0 (the paper's "~2%" for Q = 0.01, V = 1 is K_2).
Needs only the standard library.
"""
import math


def steady_gain(q_over_v):
    """K_inf for q = Q/V (0 when q <= 0: the filter stops learning)."""
    if q_over_v <= 0:
        return 0.0
    return 2.0 * q_over_v / (q_over_v + math.sqrt(q_over_v * q_over_v + 4.0 * q_over_v))


def steady_prior_variance(q, v):
    """M = P_pred at steady state."""
    return 0.5 * (q + math.sqrt(q * q + 4.0 * q * v))


def transient(q, v, p0=0.0, tokens=16):
    """[(t, K_t, sigma_t)] for t = 1..tokens, as `kpo gain --csv` prints them."""
    ratio, k_prev, rows = q / v, p0 / v, []
    for t in range(1, tokens + 1):
        prior = k_prev + ratio
        gain = prior / (prior + 1.0)
        rows.append((t, gain, math.sqrt(v * (prior + 1.0))))
        k_prev = gain
    return rows


def summary(q, v, kappa=3.0, p0=0.0):
    """The steady state and the first two tokens' gains as one dict."""
    k_inf = steady_gain(q / v)
    sigma_inf = math.sqrt(steady_prior_variance(q, v) + v)
    first = transient(q, v, p0, 2)
    return {"q": q, "v": v, "kappa": kappa, "k_inf": k_inf,
            "memory_tokens": 1.0 / k_inf if k_inf > 0 else math.inf,
            "sigma_inf": sigma_inf, "threshold_sigma": kappa * sigma_inf,
            "threshold_sqrtv": kappa * math.sqrt(v), "k_1": first[0][1], "k_2": first[1][1]}
