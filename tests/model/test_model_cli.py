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


def test_init_refuses_a_parameter_count_that_overflows(tmp_path):
    """Issue 17: hidden 2^20 x intermediate 2^44 wrapped the parameter count,
    wrote a checkpoint that could not be read back, and the out-of-memory
    message said "0 parameters"."""
    ck = make_model(tmp_path / "ck")
    config = json.loads((ck / "config.json").read_text())
    config.update(hidden_size=2**20, intermediate_size=2**44)
    big = tmp_path / "big.json"
    big.write_text(json.dumps(config))
    out = tmp_path / "out"
    r = kpo("model", "init", "--out", str(out), "--config", str(big))
    assert r.returncode != 0
    assert "big.json: field 'intermediate_size' (17592186044416)" in r.stderr, r.stderr
    assert "too large" in r.stderr and r.stderr.count("\n") == 1
    assert not out.exists()
    # Each tensor under the limit, three of them over it.
    config.update(hidden_size=2**20, intermediate_size=2**31)
    big.write_text(json.dumps(config))
    r = kpo("model", "init", "--out", str(out), "--config", str(big))
    assert r.returncode != 0 and "'intermediate_size'" in r.stderr and not out.exists()
    # Valid but beyond memory: the message gives the real count, not 0.
    config.update(hidden_size=2**20, intermediate_size=2**28, num_hidden_layers=1)
    big.write_text(json.dumps(config))
    expected = ((config["vocab_size"] * 2**20) * (1 if config["tie_word_embeddings"] else 2)
                + 2 * 2**20 + 2 * config["head_dim"] + 3 * 2**48 + 2**20
                + 2 * 2**20 * config["head_dim"] * (config["num_attention_heads"]
                                                   + config["num_key_value_heads"]))
    env = dict(os.environ, ASAN_OPTIONS="allocator_may_return_null=1")
    r = subprocess.run([KPO, "model", "init", "--out", str(out), "--config", str(big)],
                       capture_output=True, text=True, env=env)
    assert r.returncode != 0 and not out.exists()
    assert f"out of memory allocating {expected} parameters" in r.stderr, r.stderr


def test_nonfinite_weights_warn_once_per_tensor(tmp_path):
    """Issue 17: NaN/inf weights loaded silently; now a warning names each
    tensor once and the load still succeeds."""
    import struct
    ck = make_model(tmp_path / "ck")
    path = ck / "model.safetensors"
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    for name, values in (("model.norm.weight", [float("nan"), float("inf")]),
                         ("model.layers.0.mlp.up_proj.weight", [float("-inf")])):
        begin = header[name]["data_offsets"][0]
        for k, v in enumerate(values):
            data[base + begin + 4 * (k + 1):base + begin + 4 * (k + 2)] = struct.pack("<f", v)
    path.write_bytes(bytes(data))
    r = kpo("model", "list", str(ck))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert "'model.norm.weight' has 2 non-finite values" in r.stderr
    assert "first at flat index 1" in r.stderr
    assert "'model.layers.0.mlp.up_proj.weight' has 1 non-finite value " in r.stderr
    assert all("model.safetensors" in line and "warning" in line for line in lines)
