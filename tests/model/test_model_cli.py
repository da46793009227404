"""The model commands end to end: kpo model init / list, kpo logprobs
against the PyTorch reference, kpo generate, and bad input exiting non-zero
with one clear message."""
import json
import os
import subprocess
import sys

KPO = os.environ["KPO_BIN"]
REFERENCE = os.path.join(os.environ["KPO_SOURCE_ROOT"], "tests", "reference", "qwen3_reference.py")


def kpo(*args):
    return subprocess.run([KPO, *args], capture_output=True, text=True)


def make_model(path, *extra):
    r = kpo("model", "init", "--out", str(path), "--preset", "tiny", "--std", "0.5", *extra)
    assert r.returncode == 0, r.stderr
    return path


def test_init_and_list(tmp_path):
    ck = make_model(tmp_path / "ck")
    with open(ck / "config.json") as f:
        config = json.load(f)
    assert config["model_type"] == "qwen3" and config["architectures"] == ["Qwen3ForCausalLM"]
    r = kpo("model", "list", str(ck), "--tensors")
    assert r.returncode == 0, r.stderr
    assert "model.layers.1.mlp.down_proj.weight" in r.stdout
    assert "90496 model parameters" in r.stdout
    make_model(tmp_path / "bf", "--dtype", "bf16")
    assert "BF16" in kpo("model", "list", str(tmp_path / "bf"), "--tensors").stdout


def test_logprobs_match_reference(tmp_path):
    ck = make_model(tmp_path / "ck")
    lines = [{"tokens": [1, 5, 7, 9, 200, 13, 13, 2], "start": 3}, {"tokens": [3, 4]},
             {"tokens": list(range(40, 80))}]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(x) + "\n" for x in lines))
    ours = kpo("logprobs", "--model", str(ck), "--input", str(inp))
    assert ours.returncode == 0, ours.stderr
    ref = subprocess.run([sys.executable, REFERENCE, "logprobs", "--model", str(ck), "--input",
                          str(inp)], capture_output=True, text=True, check=True)
    for a, b, item in zip(ours.stdout.splitlines(), ref.stdout.splitlines(), lines):
        a, b = json.loads(a), json.loads(b)
        assert len(a["logprobs"]) == len(item["tokens"]) - item.get("start", 1)
        for key in ("logprobs", "entropies"):
            for x, y in zip(a[key], b[key]):
                assert abs(x - y) <= 1e-4 * max(abs(y), 1.0), (key, x, y)


def test_generate_greedy_is_repeatable(tmp_path):
    ck = make_model(tmp_path / "ck")
    a = kpo("generate", "--model", str(ck), "--tokens", "1,2,3", "--max-new", "6")
    b = kpo("generate", "--model", str(ck), "--tokens", "1,2,3", "--max-new", "6")
    assert a.returncode == 0 and a.stdout == b.stdout
    ids = [int(x) for x in a.stdout.strip().split(",")]
    assert len(ids) == 6 and all(0 <= i < 256 for i in ids)
    s = kpo("generate", "--model", str(ck), "--tokens", "1,2,3", "--max-new", "6",
            "--temperature", "1", "--seed", "5")
    assert s.returncode == 0 and s.stdout == kpo("generate", "--model", str(ck), "--tokens",
                                                 "1,2,3", "--max-new", "6", "--temperature", "1",
                                                 "--seed", "5").stdout


def test_bad_input_fails_clearly(tmp_path):
    ck = make_model(tmp_path / "ck")
    r = kpo("generate", "--model", str(ck), "--tokens", "1,999")
    assert r.returncode != 0 and "token id 999 is out of range" in r.stderr
    inp = tmp_path / "bad.jsonl"
    inp.write_text('{"tokens": [1, 2, 3]}\n{"tokens": [1, 256]}\n')
    r = kpo("logprobs", "--model", str(ck), "--input", str(inp))
    assert r.returncode != 0 and "bad.jsonl:2" in r.stderr and "256" in r.stderr
    config = json.loads((ck / "config.json").read_text())
    del config["rms_norm_eps"]
    (ck / "config.json").write_text(json.dumps(config))
    r = kpo("model", "list", str(ck))
    assert r.returncode != 0
    assert "config.json: field 'rms_norm_eps' is missing" in r.stderr
    assert r.stderr.count("\n") == 1
