"""An independent NumPy-free reference of the KPO filter and its saturation
modes, written from algorithms.md and the papers, not from the C code.

Used only by tests: it filters one response at a time in plain Python
floats and returns per-token (rho, gain, delta, threshold, clipped)."""
import math


def filter_response(z, q, v, mode="none", kappa=3.0, rho0=0.0, p0=0.0, iterations=3,
                    c_state=None, step_size=1.0, scale_covariance=True,
                    lambda_bound=0.9, lambda_energy=0.9):
    c_state = kappa if c_state is None else c_state
    rho, p = rho0, p0
    bound2, energy = kappa * kappa, 1.0          # adaptive state
    out = []
    for obs in z:
        m = p + q                                # prior variance P_{t|t-1}
        s2 = m + v                               # innovation variance
        gain = m / s2
        delta = obs - rho
        sigma = math.sqrt(s2)
        if mode == "none":
            threshold = math.inf
        elif mode == "sigma":
            threshold = kappa * sigma
        elif mode in ("sqrtv", "iterated"):
            threshold = kappa * math.sqrt(v)
        elif mode == "adaptive":
            threshold = math.sqrt(bound2) * sigma
        else:
            raise ValueError(mode)
        clipped = abs(delta) > threshold
        if mode == "iterated":
            rho, p = _huber_update(rho, m, obs, v, gain, kappa, c_state, iterations,
                                   step_size, scale_covariance)
        else:
            used = max(-threshold, min(threshold, delta))
            rho = rho + gain * used
            p = m * v / s2
            if mode == "adaptive":
                r2 = (delta / sigma) ** 2
                g1 = (1 - lambda_bound) * kappa * kappa * math.e
                bound2 = lambda_bound * bound2 + g1 * energy * math.exp(-energy)
                energy = lambda_energy * energy + (1 - lambda_energy) * r2
        out.append((rho, gain, delta, threshold, int(clipped)))
    return out


def _weights(x, x_pred, m, obs, v, c_state, c_obs):
    """Huber weights min(1, c / |normalised residual|) of the two terms."""
    rs = abs(x - x_pred) / math.sqrt(m) if m > 0 else 0.0
    ro = abs(obs - x) / math.sqrt(v)
    alpha = c_state / rs if rs > c_state else 1.0
    beta = c_obs / ro if ro > c_obs else 1.0
    return alpha, beta


def _huber_update(x_pred, m, obs, v, gain, c_obs, c_state, iterations, eta, scale):
    """Yang & Boyd's scaled-gradient iterations, scalar state, C = 1."""
    x = x_pred
    for _ in range(iterations):
        alpha, beta = _weights(x, x_pred, m, obs, v, c_state, c_obs)
        x = x + eta * (beta * gain * (obs - x) + alpha * (1 - gain) * (x_pred - x))
    if m == 0:
        return x, 0.0
    if not scale:
        return x, m * v / (m + v)
    alpha, beta = _weights(x, x_pred, m, obs, v, c_state, c_obs)
    alpha, beta = max(alpha, 1e-9), max(beta, 1e-9)
    return x, 1.0 / (alpha / m + beta / v)
