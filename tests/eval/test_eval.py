"""kpo eval end to end (a tiny random model, the byte tokenizer), the eval
file read back with h5py, rank layouts compared, --device cuda failing
cleanly without a GPU, and kpo stats on eval files checked against
statistics computed here."""
import math
import re
import shutil
import statistics
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from eval_work import PROBLEMS, kpo, make_work

K = 4
EXPECTED = [K if i % 3 == 1 else 0 for i in range(7)]


def pass_at_k(n, c, k):
    """Chen et al. (2021): 1 - C(n - c, k) / C(n, k)."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return make_work(tmp_path_factory.mktemp("eval"))


def run_eval(work, out, *extra, launcher=(), check=True):
    return kpo("eval", "--model", work / "model", "--tokenizer", "byte", "--bench", "arith",
               "--arith-problems", 10, "--bench", f"small={work / 'small.jsonl'}", "--k", K,
               "--max-new-tokens", 12, "--max-batch", 8, "--seed", 7, "--out", out, *extra,
               launcher=launcher, check=check)


def printed_table(stdout):
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"(\S+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), int(m.group(3)), float(m.group(4)),
                                float(m.group(5)))
    return rows


def test_eval_file_counts_and_printed_table(work):
    out = work / "single.h5"
    r = run_eval(work, out)
    table = printed_table(r.stdout.decode())
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "kpo-eval" and f.attrs["format_version"] == 1
        assert f.attrs["k"] == str(K) and float(f.attrs["top_p"]) == 0.7
        assert float(f.attrs["temperature"]) == 1.0 and f.attrs["tokenizer"] == "byte"
        assert f.attrs["model"] == str(work / "model") and "kpo" in f.attrs["build_info"]
        assert f.attrs["device"] == "cpu" and f.attrs["dtype"] == "fp32"
        assert sorted(f["bench"]) == ["arith", "small"]
        for name, n in (("arith", 10), ("small", len(PROBLEMS))):
            g = f["bench"][name]
            correct, samples = g["correct"][:], g["samples"][:]
            assert correct.dtype == np.int64 and correct.shape == (n,)
            assert samples.tolist() == [K] * n
            assert g["problem_index"][:].tolist() == list(range(n))
            assert g.attrs["k"] == K and g.attrs["n_problems"] == n
            avg = float(np.mean(correct / samples))
            pas = float(np.mean([pass_at_k(K, int(c), K) for c in correct]))
            assert g.attrs["avg_at_k"] == pytest.approx(avg, abs=1e-12)
            assert g.attrs["pass_at_k"] == pytest.approx(pas, abs=1e-12)
            assert table[name] == (n, K, round(100 * avg, 2), round(100 * pas, 2))
        assert f["bench/small"].attrs["source"] == str(work / "small.jsonl")
        assert f["bench/arith"].attrs["source"] == "arith"
        assert f["bench/small/correct"][:].tolist() == EXPECTED
    assert [p.name for p in work.iterdir() if ".tmp." in p.name] == []


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="SKIPPED: no mpirun")
def test_rank_layouts_write_identical_counts(work):
    files = []
    for n in (1, 2, 3):
        out = work / f"ranks{n}.h5"
        r = run_eval(work, out, launcher=("mpirun", "--oversubscribe", "-np", str(n)))
        assert r.stdout.decode().count("wrote") == 1  # only rank 0 reports
        files.append(out)
    first = h5py.File(files[0], "r")
    for path in files[1:]:
        with h5py.File(path, "r") as f:
            for key, value in first.attrs.items():
                if key != "created":
                    assert f.attrs[key] == value, key
            for name in ("arith", "small"):
                for d in ("correct", "samples", "problem_index"):
                    assert np.array_equal(f["bench"][name][d][:], first["bench"][name][d][:])
                assert dict(f["bench"][name].attrs) == dict(first["bench"][name].attrs)
    first.close()


def test_device_cpu_is_the_default(work):
    """Saying --device cpu changes nothing: the same attributes and counts."""
    default, cpu = work / "default.h5", work / "cpu.h5"
    run_eval(work, default)
    run_eval(work, cpu, "--device", "cpu")
    with h5py.File(default, "r") as a, h5py.File(cpu, "r") as b:
        assert {k: v for k, v in a.attrs.items() if k != "created"} == \
               {k: v for k, v in b.attrs.items() if k != "created"}
        for name in ("arith", "small"):
            assert np.array_equal(a["bench"][name]["correct"][:], b["bench"][name]["correct"][:])


def test_gpu_paths_leave_the_cpu_alone(work):
    """The decode paths of --device cuda are accepted and change nothing on
    the CPU (nor are they recorded: the CPU has one path)."""
    default, paths = work / "paths-default.h5", work / "paths-new.h5"
    run_eval(work, default)
    run_eval(work, paths, "--decode-attention", "split", "--prefill-attention", "flash",
             "--decode-graphs", "true")
    with h5py.File(default, "r") as a, h5py.File(paths, "r") as b:
        assert {k: v for k, v in a.attrs.items() if k != "created"} == \
               {k: v for k, v in b.attrs.items() if k != "created"}
        assert "decode_attention" not in b.attrs
        for name in ("arith", "small"):
            assert np.array_equal(a["bench"][name]["correct"][:], b["bench"][name]["correct"][:])


def gpu_count():
    found = re.search(r"^devices: (\d+) GPU", kpo("info").stdout.decode(), re.MULTILINE)
    return int(found.group(1)) if found else 0


@pytest.mark.parametrize("ranks", [0, 1, 2])
def test_cuda_without_gpu_fails_cleanly(work, ranks):
    """Every rank fails at set-up, one of them says why, nothing is written."""
    if gpu_count() > 0:
        pytest.skip("this machine has a GPU: --device cuda would run (tests/gpu covers it)")
    if ranks and shutil.which("mpirun") is None:
        pytest.skip("no mpirun")
    launcher = ("mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks)) \
        if ranks else ()
    out = work / f"cuda{ranks}.h5"
    started = time.monotonic()
    r = run_eval(work, out, "--device", "cuda", launcher=launcher, check=False)
    err = r.stderr.decode()
    assert r.returncode != 0
    messages = [line for line in err.splitlines() if line.startswith("kpo:")]
    assert len(messages) == 1, err                          # agreed, reported once
    assert messages[0].startswith("kpo: --device cuda: no usable GPU: "), messages[0]
    assert "MPI_ABORT" not in err                            # a clean, agreed exit
    assert b"wrote" not in r.stdout
    assert not out.exists()
    assert [p.name for p in work.iterdir() if ".tmp." in p.name] == []
    assert time.monotonic() - started < 60


def clean_failure(work, out, *args, needle):
    r = kpo("eval", *args, "--out", out, check=False)
    err = r.stderr.decode()
    assert r.returncode != 0 and err.startswith("kpo: ") and err.count("\n") == 1, err
    assert needle in err, err
    assert r.stdout == b""
    assert [p.name for p in work.iterdir() if ".tmp." in p.name] == []


def test_bad_input_fails_cleanly(work):
    out = work / "bad.h5"
    model = ("--model", work / "model", "--tokenizer", "byte")
    clean_failure(work, out, "--model", work / "missing", "--bench", "arith",
                  needle="missing: no such directory")
    clean_failure(work, out, *model, "--bench", "nofile", needle="NAME=FILE.jsonl or arith")
    clean_failure(work, out, *model, "--bench", "a/b=x.jsonl", needle="the name may hold only")
    clean_failure(work, out, *model, "--bench", f"x={work / 'none.jsonl'}", needle="none.jsonl")
    clean_failure(work, out, *model, "--bench", "arith", "--k", 0, needle="--k must be in")
    clean_failure(work, out, *model, "--bench", "arith", "--bench", "arith", needle="twice")
    clean_failure(work, out, *model, needle="at least one --bench")
    clean_failure(work, out, *model, "--bench", "arith", "--device", "gpu",
                  needle="--device = 'gpu': expected cpu or cuda")
    clean_failure(work, out, *model, "--bench", "arith", "--decode-attention", "flash",
                  needle="--decode-attention must be block or split, not 'flash'")
    clean_failure(work, out, *model, "--bench", "arith", "--prefill-attention", "split",
                  needle="--prefill-attention must be decode or flash, not 'split'")
    clean_failure(work, out, *model, "--bench", "arith", "--decode-graphs", "yes",
                  needle="--decode-graphs must be false or true, not 'yes'")
    assert not out.exists()
    out.write_bytes(b"precious")
    clean_failure(work, out, *model, "--bench", "arith", needle="already exists")
    assert out.read_bytes() == b"precious"


def write_eval_file(path, benches):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "kpo-eval"
        f.attrs["format_version"] = 1
        for name, (correct, samples, index) in benches.items():
            g = f.create_group(f"bench/{name}")
            g["correct"] = np.asarray(correct, dtype=np.int64)
            g["samples"] = np.asarray(samples, dtype=np.int64)
            g["problem_index"] = np.asarray(index, dtype=np.int64)


def number_after(text, label):
    return float(re.search(re.escape(label) + r"\s*([-+\d.]+)", text).group(1))


def test_stats_on_eval_files(work):
    rng = np.random.default_rng(11)
    n, k = 40, 8
    a = rng.binomial(k, rng.uniform(0.2, 0.9, n))
    b = np.clip(a - rng.integers(-1, 3, n), 0, k)
    ref = np.clip(a + rng.integers(0, 3, n), 0, k)
    index = np.arange(n) * 2
    s = np.full(n, k)
    paths = [work / "A.h5", work / "B.h5", work / "R.h5"]
    for path, c in zip(paths, (a, b, ref)):
        write_eval_file(path, {"math": (c, s, index), f"only_{path.stem}": (c, s, index)})
    out = kpo("stats", *paths, "--k", 4, "--bootstrap", 2000, "--seed", 3).stdout.decode()
    assert out.count("== benchmark") == 1 and "== benchmark math ==" in out

    pa, pb = a / k, b / k
    x1, x2, n1, n2 = a.sum(), b.sum(), n * k, n * k
    pooled = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert number_after(out, "z =") == pytest.approx(z, abs=1e-3)
    d = pa - pb
    se = statistics.stdev(d) / math.sqrt(n)
    assert number_after(out, "paired t-test over problems\n  difference") == pytest.approx(
        d.mean(), abs=1e-4)
    assert number_after(out, "SE =") == pytest.approx(se, abs=1e-5)
    assert number_after(out, "t =") == pytest.approx(d.mean() / se, abs=1e-3)
    gap = 100 * (pa.mean() - pb.mean()) / (ref.mean() / k - pb.mean())
    assert number_after(out, "gap recovered:") == pytest.approx(gap, abs=0.05)
    boot = re.search(r"CI \[([-+\d.]+), ([-+\d.]+)\]", out)
    assert float(boot.group(1)) <= d.mean() <= float(boot.group(2))
    pass4 = np.mean([pass_at_k(k, int(c), 4) for c in a])
    assert number_after(out, "pass@4") == pytest.approx(pass4, abs=1e-4)
    assert number_after(out, "avg") == pytest.approx(pa.mean(), abs=1e-4)

    two = kpo("stats", paths[0], paths[1], "--bench", "math", "--bootstrap", 500).stdout.decode()
    assert "gap recovered" not in two and number_after(two, "z =") == pytest.approx(z, abs=1e-3)

    shifted = work / "shifted.h5"
    write_eval_file(shifted, {"math": (b, s, index + 1)})
    r = kpo("stats", paths[0], shifted, check=False)
    assert r.returncode != 0 and "problem_index differs" in r.stderr.decode()
    r = kpo("stats", paths[0], paths[1], "--bench", "nope", check=False)
    assert r.returncode != 0 and "no benchmark 'nope'" in r.stderr.decode()
    counts = work / "plain.counts"
    counts.write_text("".join(f"{c} {k}\n" for c in b))
    r = kpo("stats", paths[0], counts, check=False)
    assert r.returncode != 0 and "not a mix" in r.stderr.decode()
