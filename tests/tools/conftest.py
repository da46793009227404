"""Fixtures for the tools/ tests: a directory of tiny runs laid out as the
Slurm jobs lay them out (RUNS/<condition>/run.h5 and eval.h5).

    kpo-weak     a real 3-step `kpo train` (tiny random model, byte
                 tokenizer, 2 mini-batches, filter mode none) and `kpo eval`
                 of its final checkpoint
    is-kpo-weak  `kpo simulate` in mode sigma (2 mini-batches), and `kpo eval`
                 of the untrained model
    kpo-strong   `kpo simulate` in mode none, and `kpo eval` of the untrained
                 model with another seed

Nothing here imports h5py, pandas or matplotlib: test_tools.py skips, saying
so, when one is missing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
TOOLS = ROOT / "tools"
sys.path.insert(0, str(TOOLS))
KPO = os.environ.get("KPO_BIN", str(ROOT / "build" / "kpo"))
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
PROBLEMS = [{"problem": f"What is {i} + {i}?", "answer": "[INVALID]" if i % 3 == 1 else str(2 * i)}
            for i in range(7)]
TRAIN_INI = """[run]
out = {out}
steps = 3
checkpoint_every = 3
log_samples = 4
[model]
path = {model}
tokenizer = byte
[data]
train = arith
arith_difficulty = 1
arith_problems = 200
prompt_template = dapo
chat_template = raw
[rollout]
prompts_per_step = 4
group_size = 4
max_new_tokens = 12
max_batch = 16
[learner]
minibatches = 2
[filter]
q = 0.01
mode = none
[optim]
lr = 1e-3
warmup_steps = 0
"""


def kpo(*args):
    """Runs kpo; returns its stdout, failing the test on a non-zero exit."""
    r = subprocess.run([KPO, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, f"kpo {' '.join(map(str, args))}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def python_tool(name, *args, check=True):
    """Runs tools/NAME.py with this interpreter, as a user would."""
    r = subprocess.run([sys.executable, str(TOOLS / f"{name}.py"), *map(str, args)],
                       capture_output=True, text=True, env=ENV, timeout=300)
    if check:
        assert r.returncode == 0, f"{name} {args}:\n{r.stdout}\n{r.stderr}"
    return r


def _tiny_model(base):
    kpo("model", "init", "--out", base / "preset", "--preset", "tiny")
    config = json.loads((base / "preset" / "config.json").read_text())
    config["vocab_size"] = 264  # the byte tokenizer's 261 ids, rounded up
    (base / "config.json").write_text(json.dumps(config))
    kpo("model", "init", "--out", base / "model", "--config", base / "config.json",
        "--std", "0.2", "--seed", "3")
    return base / "model"


def _evaluate(model, bench, out, seed):
    kpo("eval", "--model", model, "--tokenizer", "byte", "--bench", "arith", "--arith-problems", 10,
        "--bench", f"small={bench}", "--k", 4, "--max-new-tokens", 12, "--max-batch", 8,
        "--seed", seed, "--out", out)


def _simulate(out, *args):
    kpo("simulate", "--out", out, "--steps", 6, "--responses", 16, "--minibatches", 2,
        "--max-length", 128, *args)


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("tools")
    runs = base / "runs"
    for c in ("kpo-weak", "is-kpo-weak", "kpo-strong"):
        (runs / c).mkdir(parents=True)
    model = _tiny_model(base)
    bench = base / "small.jsonl"
    bench.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    (base / "train.ini").write_text(TRAIN_INI.format(out=base / "train", model=model))
    kpo("train", base / "train.ini")
    os.link(base / "train" / "run.h5", runs / "kpo-weak" / "run.h5")
    checkpoint = sorted((base / "train" / "checkpoints").iterdir())[-1]
    _evaluate(checkpoint, bench, runs / "kpo-weak" / "eval.h5", 7)
    _simulate(runs / "is-kpo-weak" / "run.h5", "--q", 0.01, "--mode", "sigma", "--kappa", 3)
    _evaluate(model, bench, runs / "is-kpo-weak" / "eval.h5", 7)
    _simulate(runs / "kpo-strong" / "run.h5", "--q", 1e-6, "--seed", 2)
    _evaluate(model, bench, runs / "kpo-strong" / "eval.h5", 8)
    return runs
