"""`kpo train` with run.device = cuda: two steps of the tiny preset
(configs/tiny.ini) on a tiny random model, on one rank, on two colocated
ranks and on a learner plus a rollout rank. One GPU runs them all: ranks
that share it move gradients and weights through host memory (run.gpu_comm
= auto; docs/cuda.md). The two-rank runs are compared with the one-rank
run; run.gpu_comm = nccl on a shared GPU must refuse; with two GPUs or more
the host path is compared with NCCL. Without a GPU every case skips, saying
so."""
import os
import re
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

# The kpo runner and the tiny model are the e2e suite's (one home).
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import kpo_run  # noqa: E402

SOURCE = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))


def run(args, ranks=0, timeout=240, check=True):
    return kpo_run.run(args, ranks=ranks, timeout=timeout, check=check)


def gpus():
    """(count, description) from kpo info's devices line."""
    info = run(["info"]).stdout
    line = next((l for l in info.splitlines() if l.startswith("devices:")), "devices: ?")
    found = re.match(r"devices: (\d+) GPU", line)
    return (int(found.group(1)) if found else 0), line[len("devices: "):]


@pytest.fixture(scope="module")
def gpu_count():
    count, description = gpus()
    # The gpu suite's rule: say why, and exit 77, which meson counts as SKIP.
    if count == 0:
        reason = re.sub(r"^no usable GPU \((.*)\)$", r"\1", description)
        pytest.exit(f"no usable GPU: {reason}", returncode=77)
    if "mpi=yes" not in run(["info"]).stdout:
        pytest.exit("no usable GPU: kpo was built without MPI (kpo train needs it)", returncode=77)
    return count


@pytest.fixture(scope="module")
def nccl_built(gpu_count):
    """Without NCCL every GPU communicator takes the host path."""
    return "nccl=yes" in run(["info"]).stdout


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, gpu_count):
    """The tiny preset's shape with the byte tokenizer's vocabulary."""
    return kpo_run.tiny_model(tmp_path_factory.mktemp("model"))


# Times and memory differ run to run; everything else is reproducible.
NOT_COMPARED = ("time_", "tokens_per_second", "gpu_memory_")
# What a rollout alone decides: equal whenever the decode repeats.
ROLLOUT_METRICS = ("reward_mean", "accuracy", "groups_with_signal", "response_length_mean",
                   "response_length_max", "stopped_fraction", "tokens_response", "tokens_total")
STEPS = 2  # the second step's rollout samples from the weights the first step synced


def train(model, out, ranks, rollout_ranks, gpu_comm="auto", check=True):
    """kpo train on the tiny preset. rollout.max_batch = 64: a rank with 8
    prompts (of 16) decodes its 64 responses in one chunk, the one-rank run
    in two chunks of the same 64, so every layout runs the same decode
    batches."""
    return run(["train", SOURCE / "configs" / "tiny.ini",
                "--set", f"model.path={model}", "--set", f"run.out={out}",
                "--set", f"run.steps={STEPS}", "--set", "run.device=cuda",
                "--set", f"run.gpu_comm={gpu_comm}", "--set", "rollout.max_batch=64",
                "--set", f"rollout.ranks={rollout_ranks}"], ranks=ranks, check=check)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model):
    """Each layout trained once, shared by the tests: (stdout, run directory)."""
    done = {}

    def get(ranks, rollout_ranks, gpu_comm="auto"):
        key = (ranks, rollout_ranks, gpu_comm)
        if key not in done:
            out = tmp_path_factory.mktemp(f"run-{ranks}-{rollout_ranks}-{gpu_comm}") / "run"
            done[key] = (train(tiny_model, out, ranks, rollout_ranks, gpu_comm).stdout, out)
        return done[key]
    return get


def expected_transports(ranks, rollout_ranks, gpu_count, nccl_built=True):
    """What the start-up should print for a layout on one node: rank r is on
    GPU r % gpu_count, and a communicator whose ranks share a GPU (or any,
    without NCCL) goes through host memory."""
    world = max(ranks, 1)
    learners = list(range(world - rollout_ranks))
    sync = [0, *range(world - rollout_ranks, world)] if rollout_ranks else None

    def transport(members):
        if members is None:
            return "none"
        shared = len({r % gpu_count for r in members}) < len(members)
        return "host memory over MPI" if shared or not nccl_built else "NCCL"
    return {"learners": transport(learners), "weight sync": transport(sync)}


def printed_transports(stdout):
    found = dict(re.findall(r"^  (learners|weight sync)\s+(?:\d+ rank\(s\): )?"
                            r"(NCCL|host memory over MPI|none)", stdout, re.MULTILINE))
    assert set(found) == {"learners", "weight sync"}, stdout
    return found


def metric_names(f):
    return sorted(n for n in f["metrics"] if not n.startswith(NOT_COMPARED))


# One GPU is enough for every layout: ranks that share it move gradients and
# weights through host memory (run.gpu_comm = auto), one GPU per rank uses NCCL.
@pytest.mark.parametrize("ranks,rollout_ranks", [(0, 0), (2, 0), (2, 1)])
def test_cuda_steps(runs, gpu_count, nccl_built, ranks, rollout_ranks):
    stdout, out = runs(ranks, rollout_ranks)
    print(stdout)
    assert f"finished at step {STEPS}" in stdout
    assert printed_transports(stdout) == expected_transports(ranks, rollout_ranks, gpu_count,
                                                             nccl_built)
    with h5py.File(out / "run.h5", "r") as f:
        assert list(f["steps/step"][:]) == list(range(1, STEPS + 1))
        for step in range(STEPS):
            assert f["metrics/updates"][step] + f["metrics/skipped_updates"][step] == 4  # M = 4
            assert f["metrics/updates"][step] > 0
            assert np.isfinite(f["metrics/loss"][step])
            assert f["innovation/count"][step] > 0
        # Not asserted: the first, on-policy mini-batch's log-ratios are 0
        # only if the GPU forward repeats bit for bit; report what it did.
        print("on-policy mini-batch innovation sum of squares:",
              f["innovation/minibatch_accumulator"][0, 5])
    # The end-of-run checkpoint holds the device's weights, copied back.
    assert (out / "checkpoints" / f"step-{STEPS:08d}" / "model.safetensors").exists()


def test_learner_and_rollout_rank_match_one_rank(runs):
    """A learner plus a rollout rank computes what one rank does: the rollout
    rank decodes every prompt as the lone rank does, the lone learner
    updates on the same batch, and from step 2 on the rollout rank samples
    from the bf16 weights the sync delivered, so any error in the weight
    sync shows in step 2's records. Everything but times must be equal."""
    _, one = runs(0, 0)
    _, split = runs(2, 1)
    with h5py.File(one / "run.h5", "r") as a, h5py.File(split / "run.h5", "r") as b:
        assert metric_names(a) == metric_names(b)
        differ = [n for n in metric_names(a)
                  if not np.array_equal(a[f"metrics/{n}"][:], b[f"metrics/{n}"][:],
                                        equal_nan=True)]
        for name in ("accumulator", "histogram", "minibatch_accumulator"):
            if not np.array_equal(a[f"innovation/{name}"][:], b[f"innovation/{name}"][:],
                                  equal_nan=True):
                differ.append(f"innovation/{name}")
        for n in differ:
            print(n, a[n if "/" in n else f"metrics/{n}"][:],
                  b[n if "/" in n else f"metrics/{n}"][:])
        assert not differ, f"differ from the one-rank run: {differ}"


def test_colocated_learners_match_one_rank(runs):
    """Two colocated ranks decode the same 64-response batches as one rank,
    so step 1's rollout records are equal; the learners split each
    mini-batch and sum gradients, which changes only float rounding (bf16
    forward over half the sequences), so the policy's entropy agrees
    closely and the same number of updates is taken."""
    _, one = runs(0, 0)
    _, colocated = runs(2, 0)
    with h5py.File(one / "run.h5", "r") as a, h5py.File(colocated / "run.h5", "r") as b:
        assert metric_names(a) == metric_names(b)
        for name in ROLLOUT_METRICS:
            assert a[f"metrics/{name}"][0] == b[f"metrics/{name}"][0], name
        assert a["metrics/updates"][0] == b["metrics/updates"][0]
        assert a["innovation/count"][0] == b["innovation/count"][0]
        assert np.isclose(a["metrics/entropy_mean"][0], b["metrics/entropy_mean"][0],
                          rtol=1e-2, atol=0), (a["metrics/entropy_mean"][0],
                                               b["metrics/entropy_mean"][0])


def test_nccl_refuses_a_shared_gpu(tmp_path, tiny_model, gpu_count, nccl_built):
    """run.gpu_comm = nccl with two ranks on one GPU stops at start-up on
    every rank, reported once, naming the ranks and the GPU, before NCCL
    itself ("Duplicate GPU detected") or any run file."""
    if gpu_count >= 2:
        pytest.skip(f"{gpu_count} GPUs: two ranks get one each, nothing is shared")
    started = time.monotonic()
    result = train(tiny_model, tmp_path / "run", 2, 0, gpu_comm="nccl", check=False)
    assert result.returncode != 0
    messages = [l for l in result.stderr.splitlines() if l.startswith("kpo:")]
    assert len(messages) == 1, result.stderr
    expected = ("run.gpu_comm = nccl: learner ranks 0 and 1 share GPU " if nccl_built
                else "run.gpu_comm = nccl: kpo was built without NCCL")
    assert expected in messages[0], messages[0]
    assert "MPI_ABORT" not in result.stderr
    assert not (tmp_path / "run").exists()
    assert time.monotonic() - started < 120


@pytest.mark.parametrize("ranks,rollout_ranks", [(2, 0), (2, 1)])
def test_host_path_matches_nccl(runs, gpu_count, nccl_built, ranks, rollout_ranks):
    """With a GPU per rank, run.gpu_comm = host moves the same numbers as
    NCCL: a sum of two floats is the same in either order, and a broadcast
    copies bits, so the records are equal."""
    if gpu_count < 2 or not nccl_built:
        pytest.skip(f"needs NCCL (built: {nccl_built}) and 2 GPUs (this machine: {gpu_count})")
    nccl_out, nccl = runs(ranks, rollout_ranks, "nccl")
    host_out, host = runs(ranks, rollout_ranks, "host")
    assert "host memory over MPI" in printed_transports(host_out).values()
    assert "host memory over MPI" not in printed_transports(nccl_out).values()
    with h5py.File(nccl / "run.h5", "r") as a, h5py.File(host / "run.h5", "r") as b:
        for n in metric_names(a):
            assert np.array_equal(a[f"metrics/{n}"][:], b[f"metrics/{n}"][:], equal_nan=True), n
