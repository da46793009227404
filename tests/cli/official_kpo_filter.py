"""A PyTorch rendition of the official KPO code's filter (shuohe1995/verl-kpo,
verl/trainer/ppo/core_algos.py: kalman_gains_nonsteady_1d, kalman_filter),
written from the published functions' arithmetic for test_filter_official.py
to hold kpo's C rendition (src/filter/filter_official.c) against. float32
tensors throughout, as there."""
import torch

F32 = torch.float32


def gains(q_process, r_measure, p0, length):
    """K_1..K_T from the Chebyshev closed form, clamped to [1e-6, 1 - 1e-6]."""
    big_q, r, p = (torch.tensor(x, dtype=F32) for x in (q_process, r_measure, p0))
    q, x0 = big_q / r, p / r
    s = 1.0 + 0.5 * q
    k = torch.arange(length, dtype=F32)
    eta = torch.log(s + torch.sqrt(torch.clamp(s * s - 1.0, min=0.0)))
    u = torch.sinh((k + 1.0) * eta) / torch.clamp(torch.sinh(eta), min=1e-20)
    u = torch.where(q.abs() < torch.tensor(1e-12, dtype=F32), k + 1.0, u)
    u_prev = torch.cat([torch.zeros(1, dtype=F32), u[:-1]])
    num = (u - u_prev) * x0 + u * q
    den = u * x0 + (u * (q + 1.0) - u_prev)
    return torch.clamp(num / den, 1e-6, 1.0 - 1e-6)


def filter_batch(z, mask, q_process, r_measure, p0=0.0, x0=0.0):
    """x_hat [B, T] of the parallel cumsum/exp form on a padded batch."""
    z = z.to(F32) * mask.to(F32)
    m = mask.to(F32)
    k = gains(q_process, r_measure, p0, z.shape[1])
    log_a = torch.cumsum(torch.log((1.0 - k).clamp_min(1e-12)), dim=0)
    log_a = torch.clamp(log_a, min=torch.log(torch.tensor(1e-30, dtype=F32)))
    a = torch.exp(log_a)
    inv_a = torch.exp((-log_a).clamp(max=80.0))
    s = torch.cumsum(z * (k * inv_a).view(1, -1), dim=-1)
    return (a.view(1, -1) * (s + torch.tensor(x0, dtype=F32))) * m
