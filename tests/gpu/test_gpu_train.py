"""`kpo train` with run.device = cuda: one step of the tiny preset
(configs/tiny.ini) on a tiny random model, on one rank, and on two ranks
(one GPU each: colocated, and a learner plus a rollout rank, which
exercises the NCCL gradient all-reduce and the bf16 weight broadcast) when
the machine has two GPUs. Without a GPU every case skips, saying so."""
import json
import os
import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

KPO = os.environ.get("KPO_BIN", os.path.join(os.getcwd(), "build", "kpo"))
SOURCE = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMP_NUM_THREADS": "1"}


def run(args, ranks=0, timeout=240, check=True):
    cmd = [KPO, *map(str, args)]
    if ranks:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", *cmd]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **MPI_ENV})
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


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
def tiny_model(tmp_path_factory, gpu_count):
    """The tiny preset's shape with the byte tokenizer's vocabulary."""
    base = tmp_path_factory.mktemp("model")
    run(["model", "init", "--out", base / "preset", "--preset", "tiny"])
    config = json.loads((base / "preset" / "config.json").read_text())
    config["vocab_size"] = 264          # the byte tokenizer's 261 ids, rounded up
    (base / "config.json").write_text(json.dumps(config))
    run(["model", "init", "--out", base / "model", "--config", base / "config.json",
         "--std", "0.2", "--seed", "3"])
    return base / "model"


@pytest.mark.parametrize("ranks,rollout_ranks,gpus_needed",
                         [(0, 0, 1), (2, 0, 2), (2, 1, 2)])
def test_one_cuda_step(tmp_path, tiny_model, gpu_count, ranks, rollout_ranks, gpus_needed):
    if gpu_count < gpus_needed:
        pytest.skip(f"needs {gpus_needed} GPUs (one per rank), this machine has {gpu_count}")
    out = tmp_path / "run"
    result = run(["train", SOURCE / "configs" / "tiny.ini",
                  "--set", f"model.path={tiny_model}", "--set", f"run.out={out}",
                  "--set", "run.steps=1", "--set", "run.device=cuda",
                  "--set", f"rollout.ranks={rollout_ranks}"], ranks=ranks)
    print(result.stdout)
    assert "finished at step 1" in result.stdout
    with h5py.File(out / "run.h5", "r") as f:
        assert list(f["steps/step"][:]) == [1]
        assert f["metrics/updates"][0] + f["metrics/skipped_updates"][0] == 4  # tiny: M = 4
        assert f["metrics/updates"][0] > 0
        assert np.isfinite(f["metrics/loss"][0])
        assert f["innovation/count"][0] > 0
        # Not asserted: the first, on-policy mini-batch's log-ratios are 0
        # only if the GPU forward repeats bit for bit; report what it did.
        print("on-policy mini-batch innovation sum of squares:",
              f["innovation/minibatch_accumulator"][0, 5])
    # The end-of-run checkpoint holds the device's weights, copied back.
    assert (out / "checkpoints" / "step-00000001" / "model.safetensors").exists()
