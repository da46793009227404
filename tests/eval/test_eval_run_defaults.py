"""kpo eval takes its prompt template, chat template, reward and arith
difficulty from the run that wrote the checkpoint (its resolved config),
else from the model's kpo_model.json, and says where each came from;
options given win. Also: the help texts that used to be stale, and kpo sft
refusing --reward program."""
import json
import os
import subprocess

import h5py
import pytest

KPO = os.environ.get("KPO_BIN", os.path.join(os.getcwd(), "build", "kpo"))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMP_NUM_THREADS="1")
# The run's settings, each unlike kpo eval's built-in default (dapo, qwen3,
# dapo, difficulty 1), so a default that did not come from the run shows.
RUN_PROMPT = r"Q: {problem}\n"
RUN_CHAT = "raw"
RUN_REWARD = "boxed"
RUN_DIFFICULTY = 3


def kpo(*args, check=True):
    r = subprocess.run([KPO, *map(str, args)], capture_output=True, text=True, env=ENV,
                       timeout=600)
    if check:
        assert r.returncode == 0, f"kpo {args} failed:\n{r.stdout}\n{r.stderr}"
    return r


def built_with(feature):
    return f"{feature}=yes" in kpo("info").stdout


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 2-step kpo train run with a checkpoint at step 2."""
    if not (built_with("hdf5") and built_with("mpi")):
        pytest.skip("kpo train needs MPI and HDF5")
    d = tmp_path_factory.mktemp("rundefaults")
    kpo("model", "init", "--out", d / "preset", "--preset", "tiny")
    config = json.loads((d / "preset" / "config.json").read_text())
    config["vocab_size"] = 264  # the byte tokenizer's 261 ids, rounded up
    (d / "config.json").write_text(json.dumps(config))
    kpo("model", "init", "--out", d / "model", "--config", d / "config.json", "--std", "0.2",
        "--seed", "3")
    ini = d / "run.ini"
    ini.write_text(f"""[run]
out = {d / 'run'}
steps = 2
checkpoint_every = 2
log_samples = 2
[model]
path = {d / 'model'}
tokenizer = byte
[data]
train = arith
arith_difficulty = {RUN_DIFFICULTY}
arith_problems = 64
prompt_template = {RUN_PROMPT}
chat_template = {RUN_CHAT}
[rollout]
prompts_per_step = 2
group_size = 2
max_new_tokens = 4
max_batch = 4
reward = {RUN_REWARD}
[learner]
minibatches = 1
[optim]
lr = 1e-3
warmup_steps = 0
""")
    kpo("train", ini)
    return d / "run"


def checkpoint(run_dir):
    steps = sorted((run_dir / "checkpoints").glob("step-*"))
    assert steps, f"no checkpoint under {run_dir}"
    return steps[-1]


def run_config(run_dir):
    """The run's data/rollout settings as its run file records them."""
    with h5py.File(run_dir / "run.h5", "r") as f:
        text = f.attrs["config"]
    text = text.decode() if isinstance(text, bytes) else text
    values, section = {}, ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line:
            key, value = line.split("=", 1)
            values[f"{section}.{key.strip()}"] = value.split("  ;", 1)[0].strip()
    return values


def evaluate(model, out, *extra):
    return kpo("eval", "--model", model, "--bench", "arith", "--arith-problems", 3, "--k", 1,
               "--max-new-tokens", 4, "--out", out, *extra)


def attrs(path):
    with h5py.File(path, "r") as f:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def test_eval_defaults_come_from_the_run(run_dir, tmp_path):
    cfg = run_config(run_dir)
    assert cfg["data.prompt_template"] == RUN_PROMPT  # the run recorded what it used
    out = tmp_path / "eval.h5"
    r = evaluate(checkpoint(run_dir), out)
    a = attrs(out)
    assert a["prompt_template"] == cfg["data.prompt_template"]
    assert a["chat_template"] == cfg["data.chat_template"] == RUN_CHAT
    assert a["reward"] == cfg["rollout.reward"] == RUN_REWARD
    assert a["arith_difficulty"] == cfg["data.arith_difficulty"] == str(RUN_DIFFICULTY)
    # It says where each came from: the run's config, not kpo eval's defaults.
    lines = {li.split()[0]: li for li in r.stdout.splitlines() if li.startswith("  --")}
    for option, key in [("--prompt-template", "data.prompt_template"),
                        ("--chat-template", "data.chat_template"),
                        ("--reward", "rollout.reward"),
                        ("--arith-difficulty", "data.arith_difficulty")]:
        assert option in lines, r.stdout
        assert f"({key})" in lines[option] and "kpo eval's default" not in lines[option], \
            lines[option]


def test_explicit_options_win(run_dir, tmp_path):
    out = tmp_path / "eval.h5"
    r = evaluate(checkpoint(run_dir), out, "--prompt-template", "dapo", "--chat-template",
                 "qwen3", "--arith-difficulty", 1)
    a = attrs(out)
    assert a["prompt_template"] == "dapo" and a["chat_template"] == "qwen3"
    assert a["arith_difficulty"] == "1"
    assert a["reward"] == RUN_REWARD  # not given: still the run's
    lines = {li.split()[0]: li for li in r.stdout.splitlines() if li.startswith("  --")}
    assert "from the command line" in lines["--prompt-template"]
    assert "from the command line" in lines["--chat-template"]
    assert "rollout.reward" in lines["--reward"]


def test_without_a_run_kpo_model_json_then_builtin_defaults(run_dir, tmp_path):
    """A model directory outside a run: its kpo_model.json, else the built-ins."""
    import shutil
    model = tmp_path / "copy"
    shutil.copytree(checkpoint(run_dir), model)
    (model / "trainer_state.json").unlink(missing_ok=True)
    (model / "kpo_model.json").write_text(json.dumps(
        {"tokenizer": "byte", "prompt_template": "raw", "chat_template": "raw",
         "reward": "kpo", "sft": {"data": "arith", "difficulty": 2}}))
    evaluate(model, tmp_path / "meta.h5")
    a = attrs(tmp_path / "meta.h5")
    assert (a["prompt_template"], a["chat_template"], a["reward"], a["arith_difficulty"]) == \
        ("raw", "raw", "kpo", "2")
    (model / "kpo_model.json").write_text(json.dumps({"tokenizer": "byte"}))
    r = evaluate(model, tmp_path / "plain.h5")
    a = attrs(tmp_path / "plain.h5")
    assert (a["prompt_template"], a["chat_template"], a["reward"], a["arith_difficulty"]) == \
        ("dapo", "qwen3", "dapo", "1")
    assert "kpo eval's default" in r.stdout
    (model / "kpo_model.json").write_text("[1, 2]")
    bad = kpo("eval", "--model", model, "--bench", "arith", "--out", tmp_path / "bad.h5",
              check=False)
    assert bad.returncode != 0 and "kpo_model.json: not a JSON object" in bad.stderr


def test_help_texts():
    top = kpo("--help", check=False)
    text = top.stdout + top.stderr
    line = next(li for li in text.splitlines() if li.strip().startswith("stats"))
    assert "two-proportion" not in line
    assert "pooled z-test" in line and "paired" in line and "bootstrap" in line
    help_eval = kpo("eval", "--help").stdout
    assert "the run's" in help_eval


def test_sft_refuses_a_program_reward(tmp_path):
    r = kpo("sft", "--init", "tiny", "--out", tmp_path / "m", "--reward", "program", check=False)
    assert r.returncode != 0
    assert r.stderr.strip() == ("kpo: kpo sft: --reward program is not supported: sft targets "
                                "need a built-in reward to render")
    assert not (tmp_path / "m").exists()


def test_run_file_config_when_the_checkpoint_has_none(run_dir, tmp_path):
    """A checkpoint whose trainer_state.json records no config (an older
    kpo's) takes the run's settings from RUN/run.h5 beside RUN/checkpoints."""
    import shutil
    older = run_dir / "checkpoints" / "step-99999999"
    shutil.copytree(checkpoint(run_dir), older)
    try:
        state = json.loads((older / "trainer_state.json").read_text())
        state.pop("config", None)
        (older / "trainer_state.json").write_text(json.dumps(state))
        r = evaluate(older, tmp_path / "eval.h5")
        a = attrs(tmp_path / "eval.h5")
        assert (a["prompt_template"], a["chat_template"], a["reward"], a["arith_difficulty"]) \
            == (RUN_PROMPT, RUN_CHAT, RUN_REWARD, str(RUN_DIFFICULTY))
        line = next(li for li in r.stdout.splitlines() if li.startswith("  --prompt-template"))
        assert f"{run_dir / 'run.h5'} (data.prompt_template)" in line, line
    finally:
        shutil.rmtree(older)
