"""optim.lr_schedule = verl: the learning rate each rollout step trains at,
as recorded in the run file, equals what verl's scheduler gives (a PyTorch
LambdaLR with get_constant_schedule_with_warmup's multiplier, stepped once
per rollout batch, as verl's actor worker steps it after update_policy)."""
import h5py
import pytest

from conftest import run, write_config

torch = pytest.importorskip("torch", reason="SKIPPED: PyTorch (python3-torch) is absent")


def verl_lrs(peak, warmup_ratio, total_steps, steps):
    """Per rollout step, the lr verl's actor updates run at."""
    warmup = int(warmup_ratio * total_steps)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=peak)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / max(1.0, warmup) if s < warmup else 1.0)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return lrs


@pytest.mark.parametrize("ratio,total", [(0.5, 6), (0.05, 0)])
def test_verl_schedule_matches_lambdalr(tmp_path, tiny_model, ratio, total):
    steps = 4
    config = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                          run={"steps": steps, "checkpoint_every": 0},
                          optim={"lr": 1e-3, "lr_schedule": "verl", "warmup_ratio": ratio,
                                 "schedule_steps": total})
    run(["train", config])
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        got = list(f["metrics/lr"][:])
    want = verl_lrs(1e-3, ratio, total or steps, steps)
    assert got == pytest.approx(want, rel=1e-12, abs=0), (got, want)
    # ratio 0.5 of 6 steps: 3 steps of warmup, the first at lr 0
    assert (got[0] == 0) == (ratio == 0.5)
