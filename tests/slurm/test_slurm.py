"""The jobs/ scripts on a real Slurm on localhost (tests/slurm/local-slurm.sh):
a two-task tiny run, preemption by `scontrol requeue` with automatic resume,
a finished job that does not run again, and jobs/reproduce-paper.sh end to
end (every condition, evaluation and the analysis job's tables)."""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_helpers import (CONDITIONS, JOBS, KPO, LOCAL_SLURM, TINY_SETS,  # noqa: E402
                           assert_every_step_once, make_tiny_model, rank_log_has, run, wait_for)

SLURM_DIR = os.environ.get("KPO_SLURM_DIR", "/tmp/kpo-slurm")
SLURM_ENV = dict(os.environ, SLURM_CONF=f"{SLURM_DIR}/slurm.conf", KPO_BIN=KPO)
# Two tasks on a CPU node: what the tiny scale asks of sbatch.
CPU_RESOURCES = ["--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1",
                 "--time=00:20:00"]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
            "BOOT_FAIL", "DEADLINE", "PREEMPTED"}


def why_no_slurm():
    if os.geteuid() != 0:
        return "needs root to run slurmctld/slurmd (and jobs as root)"
    for tool in ("slurmctld", "slurmd", "sbatch", "munged"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} is not installed (apt-get install slurm-wlm munge)"
    if not Path(KPO).exists():
        return f"no kpo binary at {KPO}"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = why_no_slurm()
    if reason:
        pytest.skip(reason)
    env = dict(SLURM_ENV, KPO_SLURM_DIR=SLURM_DIR)
    already = subprocess.run(["bash", LOCAL_SLURM, "status"], env=env, timeout=30).returncode == 0
    if not already:
        run(["bash", LOCAL_SLURM, "start"], env=env, timeout=120)
    try:
        yield env
    finally:
        # Whoever started the cluster stops it (.ci/run, or this module).
        if not already:
            subprocess.run(["bash", LOCAL_SLURM, "stop"], env=env, timeout=120)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("model"))


def sbatch(env, *args):
    out = run(["sbatch", "--parsable", *args], env=env, timeout=60).stdout.strip()
    return out.split(";")[0]


def job_field(env, job_id, field):
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True,
                         env=env, timeout=30).stdout
    match = re.search(rf"\b{field}=(\S+)", out)
    return match.group(1) if match else None


def wait_job_done(env, job_id, timeout, log=None):
    def state():
        value = job_field(env, job_id, "JobState")
        return value if value in TERMINAL else None
    try:
        return wait_for(state, timeout, interval=1, what=f"job {job_id} to end")
    except AssertionError:
        text = log.read_text(errors="replace") if log and log.exists() else "(no log)"
        subprocess.run(["scancel", job_id], env=env, timeout=30)
        raise AssertionError(f"job {job_id} did not end in {timeout}s; log:\n{text}")


def release_now(env, job_id):
    """Slurm holds a requeued job back (BeginTime, about two minutes); let it start."""
    wait_for(lambda: job_field(env, job_id, "JobState") == "PENDING", 90, interval=0.5,
             what=f"job {job_id} to be requeued")
    # Not "now": slurmd refuses a batch job started within the same second as
    # the revocation of its previous credential ("Killing non-startable batch
    # job: Job credential revoked"), which a requeue right after the job ended
    # hits. A few seconds' grace avoids it.
    run(["scontrol", "update", f"jobid={job_id}", "StartTime=now+3"], env=env, timeout=30)


def train_job_args(model, runs, condition, steps, extra=()):
    sets = [*TINY_SETS, f"run.steps={steps}", "run.checkpoint_every=2", *extra]
    args = [f"{JOBS}/{condition}.sbatch", "--scale", "tiny", "--model", model, "--runs", runs,
            "--rollout-ranks", "1"]
    for item in sets:
        args += ["--set", item]
    return args


def test_dry_run_prints_the_command_and_maps_roles(tmp_path, tiny_model):
    """No Slurm needed: --dry-run prints the launcher line; --rollout-nodes maps the last
    nodes' ranks to rollout (rank blocks), from the allocation Slurm describes."""
    env = dict(os.environ, KPO_BIN=KPO, SLURM_JOB_ID="", SLURM_NTASKS="16", SLURM_JOB_NUM_NODES="4",
               SLURM_NTASKS_PER_NODE="4", KPO_LAUNCHER="srun")
    out = run(["bash", JOBS / "train.sh", "kpo-strong", "--scale", "tiny", "--model", tiny_model,
               "--runs", tmp_path, "--rollout-nodes", "1", "--dry-run"], env=env).stdout
    assert "rollout on the last 1 (ranks 12-15)" in out, out
    line = next(li for li in out.splitlines() if "run: " in li)
    assert "srun --mpi=pmix" in line and " train " in line
    assert "rollout.ranks=4" in line and "configs/tiny.ini" in line and "kpo-strong.ini" in line
    assert not (tmp_path / "kpo-strong").exists(), "a dry run must not create the run"
    # Paper scale names what is missing instead of guessing paths.
    missing = run(["bash", JOBS / "train.sh", "kpo-weak", "--model", tiny_model, "--dry-run"],
                  env=env, check=False)
    assert missing.returncode != 0 and "KPO_TRAIN_DATA" in missing.stderr
    bad = run(["bash", JOBS / "train.sh", "kpo-weak", "--scale", "tiny", "--model", tiny_model,
               "--rollout-nodes", "4", "--dry-run"], env=env, check=False)
    assert bad.returncode != 0 and "leaves no learner node" in bad.stderr


def test_tiny_run_through_sbatch_two_tasks(slurm, tmp_path, tiny_model):
    runs = tmp_path / "runs"
    log = tmp_path / "train.out"
    steps = 3
    job = sbatch(slurm, *CPU_RESOURCES, f"--output={log}",
                 *train_job_args(tiny_model, runs, "is-kpo-weak", steps))
    state = wait_job_done(slurm, job, 300, log)
    text = log.read_text()
    assert state == "COMPLETED", text
    assert "run: srun --mpi=pmix" in text, "the job prints its command before running it"
    assert f"finished at step {steps}" in text, text
    assert "2 task(s)" in text
    run_dir = runs / "is-kpo-weak"
    assert_every_step_once(run_dir / "run.h5", steps)
    assert (run_dir / ".kpo-job-finished").exists()
    assert (run_dir / "checkpoints" / f"step-{steps:08d}").is_dir()
    # The resolved config in the run file is the tiny IS-KPO-weak one.
    import h5py
    with h5py.File(run_dir / "run.h5", "r") as f:
        config = f.attrs["config"]
        config = config.decode() if isinstance(config, bytes) else str(config)
    assert re.search(r"mode\s*=\s*sigma", config) and re.search(r"ranks\s*=\s*1", config), config

    # Submitting the finished condition again runs nothing.
    again_log = tmp_path / "again.out"
    again = sbatch(slurm, *CPU_RESOURCES, f"--output={again_log}",
                   *train_job_args(tiny_model, runs, "is-kpo-weak", steps))
    assert wait_job_done(slurm, again, 120, again_log) == "COMPLETED"
    again_text = again_log.read_text()
    assert "already finished" in again_text and "run: srun" not in again_text, again_text
    assert_every_step_once(run_dir / "run.h5", steps)


def test_requeue_mid_run_resumes_with_every_step_once(slurm, tmp_path, tiny_model):
    runs = tmp_path / "runs"
    log = tmp_path / "train.out"
    # Enough steps that the requeue lands mid-run on a fast machine too (a
    # tiny step can take 0.1 s); the log is polled often.
    steps = 40
    job = sbatch(slurm, *CPU_RESOURCES, f"--output={log}",
                 *train_job_args(tiny_model, runs, "kpo-weak", steps))
    # Mid-run: step 2 is recorded (handlers installed, a checkpoint exists).
    wait_for(lambda: rank_log_has(log, rf"^step +2/{steps}"), 240, interval=0.05,
             what="step 2 in the job log")
    run(["scontrol", "requeue", job], env=slurm, timeout=30)
    assert not rank_log_has(log, rf"^finished at step {steps}"), "requeued after the end: no test"
    release_now(slurm, job)
    state = wait_job_done(slurm, job, 300, log)
    text = log.read_text()
    assert state == "COMPLETED", text
    assert job_field(slurm, job, "Restarts") == "1", text
    # Slurm's TERM reached kpo through the batch shell and srun; kpo checkpointed.
    assert re.search(r"received SIGTERM", text), text
    assert re.search(r"^checkpointed and stopped \(signal\) at step (\d+)", text, re.M), text
    stopped = int(re.search(r"^checkpointed and stopped \(signal\) at step (\d+)", text, re.M).group(1))
    assert 2 <= stopped < steps
    assert f"resuming {runs}/kpo-weak from its newest checkpoint (step-{stopped:08d})" in text, text
    assert re.search(r"train .* --resume$", text, re.M), "the requeued job resumes by itself"
    assert f"finished at step {steps}" in text
    assert_every_step_once(runs / "kpo-weak" / "run.h5", steps)

    # A finished job that Slurm requeues (node failure, admin) does not train again.
    run(["scontrol", "requeue", job], env=slurm, timeout=30)
    release_now(slurm, job)
    final = wait_job_done(slurm, job, 120, log)
    tail = log.read_text()[len(text):]
    details = run(["scontrol", "show", "job", job], env=slurm, timeout=30).stdout
    assert final == "COMPLETED", f"{final}\n{details}\nlog after the first run:\n{tail}"
    assert "already finished" in tail and "run: srun" not in tail, tail
    assert_every_step_once(runs / "kpo-weak" / "run.h5", steps)


def test_reproduce_paper_tiny_end_to_end(slurm, tmp_path, tiny_model):
    runs = tmp_path / "paper"
    steps = 2
    cmd = ["bash", JOBS / "reproduce-paper.sh", "--scale", "tiny", "--runs", runs,
           "--model", tiny_model, "--set", f"run.steps={steps}", "--set", "run.checkpoint_every=2",
           "--set", "rollout.ranks=1", "--eval-arg=--arith-problems=8", "--eval-arg=--k=4",
           "--eval-arg=--max-new-tokens=16", "--wait"]
    for item in TINY_SETS:
        cmd += ["--set", item]
    started = time.monotonic()
    result = run(cmd, env=slurm, timeout=900, check=False)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted((runs / "logs").glob("*.out"))) if (runs / "logs").exists() else ""
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{logs}"
    submitted = [li for li in result.stderr.splitlines() if "run: sbatch" in li]
    assert len(submitted) == 2 * len(CONDITIONS) + 1, result.stderr
    assert sum("afterok:" in li for li in submitted) == len(CONDITIONS)
    tables = (runs / "paper-tables.txt").read_text()
    assert tables in result.stdout, "the tables are printed"
    for heading in ("Table 1", "Table 1 statistics", "Table 2", "Table 3"):
        assert f"== {heading}" in tables, tables
    for condition in CONDITIONS:
        assert_every_step_once(runs / condition / "run.h5", steps,
                               filtered=condition not in ("grpo", "gspo"))
        assert (runs / condition / "eval.h5").exists(), logs
        row = re.search(rf"^{re.escape(condition)} +([\d.]+) / ([\d.]+)", tables, re.M)
        assert row, f"no Table 1 row for {condition}:\n{tables}"
        assert 0 <= float(row.group(1)) <= 100 and 0 <= float(row.group(2)) <= 100
    # kpo stats ran for each comparison against KPO-weak (with KPO-strong as reference).
    comparisons = re.findall(r"^-- arith: (\S+) vs kpo-weak$", tables, re.M)
    assert sorted(comparisons) == sorted(c for c in CONDITIONS if c != "kpo-weak"), tables
    assert tables.count("paired t-test over problems") >= len(comparisons), tables
    assert tables.count("bootstrap over problems") >= len(comparisons), tables
    # Table 2 holds both filtered runs; Table 3 the four saturation variants.
    # kpo diag labels each run by its directory, the condition.
    assert re.search(r"^== kpo-weak: \S*/kpo-weak/run\.h5 \(2 steps\)", tables, re.M), tables
    assert re.search(r"^== is-kpo-weak: \S*/is-kpo-weak/run\.h5 \(2 steps\)", tables, re.M), \
        tables
    for condition in ("is-kpo-weak", "kpo-weak", "opt0", "opt1"):
        assert re.search(rf"^{re.escape(condition)} +\S+ +\S+ +\S+ +\d", tables, re.M), tables
    print(f"reproduce-paper.sh (tiny) took {time.monotonic() - started:.0f}s")
