"""objective_compute against PyTorch autograd on the same surrogates, as the
KPO fork of verl writes them (algorithms.md §1, §2): loss value and
d loss / d log pi for every token."""
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.environ.get("KPO_SOURCE_ROOT", "."), "tests", "reference"))
from kalman_reference import filter_response  # noqa: E402

PROBE = os.environ.get("KPO_OBJECTIVE_PROBE")


def reference(kind, agg, clip, eps_low, eps_high, dual, q, v, mode, kappa, batch, norm):
    loss_total = torch.zeros((), dtype=torch.float64)
    grads = []
    for adv, logp_np, old_np in batch:
        logp = torch.tensor(logp_np, dtype=torch.float64, requires_grad=True)
        old = torch.tensor(old_np, dtype=torch.float64)
        z = (logp - old).detach()
        if kind == "kpo":
            rho = torch.tensor([t[0] for t in filter_response(z.tolist(), q, v, mode, kappa)],
                               dtype=torch.float64)
            log_r = torch.clamp(logp - logp.detach() + rho, max=10.0)
        elif kind == "gspo":
            log_r = torch.clamp(logp - logp.detach() + z.mean(), max=10.0)
        else:
            log_r = torch.clamp(logp - old, min=-20.0, max=20.0)
        ratio = torch.exp(log_r)
        pg1 = -adv * ratio
        if clip:
            pg2 = -adv * torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
            loss = torch.maximum(pg1, pg2)
            if kind == "grpo" and dual > 0 and adv < 0:
                loss = torch.minimum(torch.full_like(loss, -adv * dual), loss)
        else:
            loss = pg1
        n = len(logp_np)
        if agg == "token-mean":
            term = loss.sum() / norm[1]
        elif agg == "seq-mean-token-sum":
            term = loss.sum() / norm[0]
        else:
            term = loss.mean() / norm[0]
        term.backward()
        loss_total = loss_total + term.detach()
        grads.extend(logp.grad.tolist())
        assert n == len(logp.grad)
    return loss_total.item(), np.array(grads)


def make_batch(seed, n_responses, staleness):
    rng = np.random.default_rng(seed)
    batch = []
    for r in range(n_responses):
        n = int(rng.integers(1, 120))
        old = -np.abs(rng.normal(1.0, 0.7, n))
        logp = old + staleness * rng.standard_t(3, n)
        batch.append((float(rng.choice([-1.3, -0.4, 0.5, 1.1])), logp, old))
    return batch


def run_probe(tmp_path, header, batch, norm):
    path = tmp_path / "batch.txt"
    with open(path, "w") as f:
        f.write(" ".join(map(str, header)) + f"\n{len(batch)} {norm[0]} {norm[1]}\n")
        for adv, logp, old in batch:
            f.write(f"{adv!r} {len(logp)}\n" + " ".join(map(repr, logp.tolist())) + "\n"
                    + " ".join(map(repr, old.tolist())) + "\n")
    out = subprocess.run([PROBE, path], capture_output=True, text=True, check=True).stdout
    lines = out.split("\n")
    loss = float(lines[0].split()[1])
    clipped = float(lines[1].split()[1])
    grads = np.array([float(x) for x in lines[2:] if x])
    return loss, clipped, grads


CASES = list(itertools.product(
    ["kpo", "grpo", "gspo"],
    ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"],
    [1, 0]))


@pytest.mark.parametrize("kind,agg,clip", CASES)
def test_loss_and_gradient_match_autograd(tmp_path, kind, agg, clip):
    if not PROBE:
        pytest.skip("KPO_OBJECTIVE_PROBE is not set (run through meson test)")
    eps_low, eps_high = (3e-4, 4e-4) if kind != "grpo" else (0.2, 0.28)
    dual = 3.0 if kind == "grpo" else 0.0
    q, v, mode, kappa = 1e-2, 1.0, "sigma", 3.0
    # Enough staleness that some tokens clip and some do not.
    batch = make_batch(seed=len(kind) * 7 + len(agg) + clip, n_responses=9,
                       staleness=0.002 if kind != "grpo" else 0.3)
    tokens = sum(len(b[1]) for b in batch)
    norm = (len(batch) * 2.0, tokens * 2.0)   # as if another rank held the other half
    header = [kind, agg, clip, eps_low, eps_high, dual, 10.0, q, v, mode, kappa]
    loss, clipped, grads = run_probe(tmp_path, header, batch, norm)
    ref_loss, ref_grads = reference(kind, agg, clip, eps_low, eps_high, dual, q, v, mode,
                                    kappa, batch, norm)
    assert loss == pytest.approx(ref_loss, rel=1e-12, abs=1e-15)
    worst = np.max(np.abs(grads - ref_grads))
    assert worst < 1e-13 * max(1.0, np.max(np.abs(ref_grads))), worst
    if clip:
        assert 0 < clipped < tokens, "the batch should clip some tokens, not all"
    else:
        assert clipped == 0
