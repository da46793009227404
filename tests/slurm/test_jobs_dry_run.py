"""The device the jobs/ scripts run on, without Slurm: the paper scale trains
and evaluates on GPUs, one rank per GPU; the tiny scale on the CPU. Checked
in the commands `--dry-run` prints, in the submitter's sbatch lines, in the
scripts' #SBATCH headers, and in how kpo itself resolves the presets."""
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_helpers import CONDITIONS, JOBS, KPO, SOURCE_ROOT, make_tiny_model, run  # noqa: E402

# What Slurm exports inside a job of the paper's shape (1 node, 8 tasks, 8 GPUs);
# SLURM_JOB_ID stays empty so nothing asks a Slurm controller.
PAPER_ALLOCATION = {"SLURM_JOB_ID": "", "SLURM_JOB_NUM_NODES": "1", "SLURM_NTASKS": "8",
                    "SLURM_NTASKS_PER_NODE": "8", "SLURM_GPUS_PER_NODE": "8"}


def job_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "KPO_")) and k != "OMP_NUM_THREADS"}
    return dict(env, KPO_BIN=KPO, KPO_LAUNCHER="srun", **extra)


def run_line(out):
    lines = [li for li in out.splitlines() if "] run: " in li]
    assert len(lines) == 1, out
    return lines[0]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture()
def paper_inputs(tmp_path):
    """A model directory and a data file for the paper scale's checks (the
    dry run only looks that they exist), and a run with a checkpoint to evaluate."""
    model = tmp_path / "model"
    model.mkdir()
    data = tmp_path / "dapo.jsonl"
    data.write_text("")
    runs = tmp_path / "runs"
    for condition in CONDITIONS:
        (runs / condition / "checkpoints" / "step-00000016").mkdir(parents=True)
    return model, data, runs


def train_dry_run(condition, *args, env, check=True):
    return run(["bash", JOBS / "train.sh", condition, *args, "--dry-run"], env=env, check=check)


def eval_dry_run(condition, *args, env, check=True):
    return run(["bash", JOBS / "eval.sbatch", condition, *args, "--dry-run"], env=env,
               check=check)


def test_paper_scale_trains_and_evaluates_on_gpus(paper_inputs):
    model, data, runs = paper_inputs
    env = job_env(**PAPER_ALLOCATION)
    for condition in CONDITIONS:
        out = train_dry_run(condition, "--model", model, "--data", data, "--runs", runs,
                            env=env).stdout
        line = run_line(out)
        assert "configs/tiny.ini" not in line
        # The last word on run.device is cuda, whatever the presets say.
        assert re.findall(r"--set run\.device=(\S+)", line)[-1] == "cuda", line
        assert f"condition {condition}, scale paper, device cuda" in out, out
        assert "8 rank(s) per node, one GPU each (8 GPU(s) per node)" in out, out
    out = eval_dry_run("kpo-strong", "--runs", runs, "--bench", "math500=/data/math500.jsonl",
                       env=env).stdout
    line = run_line(out)
    assert " eval " in line and re.search(r" --device cuda( |$)", line), line
    assert "step-00000016" in line and "on cuda" in out


def test_tiny_scale_runs_on_the_cpu(paper_inputs, tiny_model):
    _, _, runs = paper_inputs
    env = job_env(SLURM_JOB_ID="", SLURM_NTASKS_PER_NODE="2", SLURM_GPUS_PER_NODE="0")
    for condition in CONDITIONS:
        out = train_dry_run(condition, "--scale", "tiny", "--model", tiny_model, "--runs", runs,
                            env=env).stdout
        line = run_line(out)
        assert "configs/base-paper.ini" in line and line.index("base-paper.ini") < \
            line.index("tiny.ini"), line
        assert re.findall(r"--set run\.device=(\S+)", line)[-1] == "cpu", line
        assert "device cpu" in out and "GPU" not in out, out
    line = run_line(eval_dry_run("kpo-weak", "--scale", "tiny", "--runs", runs, env=env).stdout)
    assert re.search(r" --device cpu( |$)", line) and "--bench arith" in line, line


def test_device_can_be_overridden_and_a_gpu_less_job_stops(paper_inputs):
    model, data, runs = paper_inputs
    paper = ["--model", model, "--data", data, "--runs", runs]
    # --device and --set run.device both win over the presets.
    for args, extra in ((["--device", "cpu"], {}), ([], {"KPO_DEVICE": "cpu"}),
                        (["--set", "run.device=cpu"], {})):
        line = run_line(train_dry_run("opt0", *paper, *args, env=job_env(**extra)).stdout)
        assert re.findall(r"--set run\.device=(\S+)", line)[-1] == "cpu", (args, line)
    line = run_line(eval_dry_run("opt0", "--runs", runs, "--bench", "a=b.jsonl", "--device", "cpu",
                                 env=job_env()).stdout)
    assert "--device cpu" in line and "--device cuda" not in line
    # cuda in a job that has no GPU stops before kpo starts loading the model.
    no_gpu = job_env(**dict(PAPER_ALLOCATION, SLURM_GPUS_PER_NODE="0"))
    for result in (train_dry_run("opt0", *paper, env=no_gpu, check=False),
                   eval_dry_run("opt0", "--runs", runs, "--bench", "a=b.jsonl", env=no_gpu,
                                check=False)):
        assert result.returncode != 0 and "the job has no GPU" in result.stderr, result.stderr
    # Fewer GPUs than ranks still runs (ranks share GPUs) but says so.
    shared = train_dry_run("opt0", *paper,
                           env=job_env(**dict(PAPER_ALLOCATION, SLURM_GPUS_PER_NODE="4"))).stdout
    assert "8 rank(s) per node on 4 GPU(s): ranks share GPUs" in shared, shared
    bad = train_dry_run("opt0", *paper, "--device", "gpu", env=job_env(), check=False)
    assert bad.returncode != 0 and "use cpu or cuda" in bad.stderr


def submitted(out):
    """The sbatch lines of a submitter dry run, by script."""
    lines = {}
    for li in out.splitlines():
        match = re.search(r"run: sbatch .*/jobs/([a-z0-9-]+\.sbatch)", li)
        if match:
            lines.setdefault(match.group(1), []).append(li)
    return lines


def test_submitter_asks_for_one_rank_per_gpu(tmp_path):
    submit = ["bash", JOBS / "reproduce-paper.sh", "--runs", tmp_path / "runs", "--dry-run"]
    paper = ["--model", tmp_path, "--data", tmp_path / "d.jsonl", "--bench", "m=m.jsonl"]
    result = run([*submit, *paper], env=job_env())
    jobs = submitted(result.stderr)
    assert set(jobs) >= {f"{c}.sbatch" for c in CONDITIONS} | {"eval.sbatch"}, result.stderr
    for name in [f"{c}.sbatch" for c in CONDITIONS] + ["eval.sbatch"]:
        for li in jobs[name]:
            assert "--gpus-per-node=8" in li and "--ntasks-per-node=8" in li, li
    assert "device cuda (1 node(s) x 8 rank(s), 8 GPU(s) per node)" in result.stdout
    # Either count gives the other on cuda.
    four = submitted(run([*submit, *paper, "--gpus-per-node", "4"], env=job_env()).stderr)
    assert all("--ntasks-per-node=4" in li for li in four["kpo-weak.sbatch"])
    tiny = run([*submit, "--scale", "tiny", "--model", tmp_path], env=job_env())
    for li in submitted(tiny.stderr)["kpo-weak.sbatch"]:
        assert "--gpus-per-node=0" in li and "--ntasks-per-node=2" in li, li
    assert "device cpu" in tiny.stdout
    gpu_less = run([*submit, *paper, "--gpus-per-node", "0"], env=job_env(), check=False)
    assert gpu_less.returncode != 0 and "--device cpu" in gpu_less.stderr


def test_batch_headers_ask_for_a_gpu_per_task():
    """sbatch alone (no submitter) gets the paper's shape from the headers."""
    for name in [f"{c}.sbatch" for c in CONDITIONS] + ["eval.sbatch"]:
        text = (JOBS / name).read_text()
        tasks = re.search(r"^#SBATCH --ntasks-per-node=(\d+)$", text, re.M)
        gpus = re.search(r"^#SBATCH --gpus-per-node=(\d+)$", text, re.M)
        assert tasks and gpus and tasks.group(1) == gpus.group(1) != "0", name


def has_gpu():
    out = subprocess.run([KPO, "info"], capture_output=True, text=True, timeout=60).stdout
    return re.search(r"devices: [1-9]\d* GPU", out) is not None


def test_kpo_resolves_the_presets_device(tmp_path, tiny_model):
    """kpo's own reading of the presets, not the jobs' shell: the paper's
    stack asks for cuda, and tiny.ini on top of it brings back the cpu."""
    configs = [SOURCE_ROOT / "configs" / "base-paper.ini", SOURCE_ROOT / "configs" / "kpo-weak.ini"]
    small = ["--set", f"model.path={tiny_model}", "--set", "rollout.prompts_per_step=4",
             "--set", "rollout.max_new_tokens=8", "--set", "run.log_samples=4"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = tmp_path / "tiny"
    run([KPO, "train", *configs, SOURCE_ROOT / "configs" / "tiny.ini", *small,
         "--set", "run.steps=1", "--set", f"run.out={out}"], env=env, timeout=300)
    with h5py.File(out / "run.h5", "r") as f:
        config = f.attrs["config"]
    config = config.decode() if isinstance(config, bytes) else config
    assert re.search(r"^device = cpu +; .*tiny\.ini:\d+$", config, re.M), config
    if has_gpu():
        pytest.skip("a GPU is here: the paper stack would train on it (checked above for tiny)")
    paper = run([KPO, "train", *configs, *small, "--set", "model.tokenizer=byte",
                 "--set", "data.train=arith", "--set", "data.chat_template=raw",
                 "--set", "run.steps=1", "--set", f"run.out={tmp_path / 'paper'}"],
                env=env, check=False)
    assert paper.returncode != 0 and "run.device = cuda: no usable GPU" in paper.stderr, \
        paper.stderr
    assert not (tmp_path / "paper").exists()
