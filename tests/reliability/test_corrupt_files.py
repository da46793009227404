"""Every kpo reader refuses a corrupt run or eval file (corrupt_files.py)
with exit status 1 and a message naming the dataset: never a crash (a
signal, a heap overflow, 'double free'), never garbage read as data, and
no output file left behind."""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import copy_run, run  # noqa: E402
import corrupt_files  # noqa: E402


def listing(path):
    return sorted(os.listdir(path))


@pytest.mark.parametrize("case", corrupt_files.CASES, ids=[c[0] for c in corrupt_files.CASES])
def test_corrupt_file_is_refused(tmp_path, tiny_run, case):
    name, kind, _, reader, dataset = case
    work = tmp_path / "cwd"
    work.mkdir()
    if reader == "resume":
        cfg = copy_run(tiny_run, tmp_path)
        bad = corrupt_files.make(case, tmp_path / "run" / "run.h5", None, tmp_path)
        shutil.copyfile(bad, tmp_path / "run" / "run.h5")
        args = ["train", cfg, "--resume", "--set", "run.steps=6"]
    else:
        bad = corrupt_files.make(case, tiny_run / "run" / "run.h5", tiny_run / "eval.h5",
                                 tmp_path)
        args = {"diag": ["diag", bad, "--pool", "all"],
                "diag-minibatches": ["diag", bad, "--minibatches"],
                "filter": ["filter", bad, "--q", "0.01", "--v", "1"],
                "stats": ["stats", bad, tiny_run / "eval.h5"]}[reader]
    before = listing(work)
    result = run(args, check=False, cwd=work)
    message = result.stdout + result.stderr
    # 1, not a signal (negative) nor 128 + signal (a shell or MPI abort)
    assert result.returncode == 1, f"{name}: exit {result.returncode}\n{message}"
    assert dataset in result.stderr, f"{name}: {dataset} not named:\n{message}"
    assert str(bad if reader != "resume" else tmp_path / "run" / "run.h5") in result.stderr
    for crash in ("double free", "corruption", "AddressSanitizer", "Segmentation",
                  "runtime error"):
        assert crash not in message, f"{name}: {crash}\n{message}"
    assert listing(work) == before, f"{name}: left output behind"
    if reader == "resume":
        # refused before any step ran: no checkpoint after step 4
        assert listing(tmp_path / "run" / "checkpoints") == ["step-00000002", "step-00000004"]


def test_uncorrupted_files_read(tiny_run):
    """The generator's base files are good: every reader accepts them."""
    run(["diag", tiny_run / "run" / "run.h5", "--minibatches"])
    run(["diag", tiny_run / "run" / "run.h5", "--pool", "all"])
    run(["filter", tiny_run / "run" / "run.h5", "--q", "0.01", "--v", "1"])
    run(["stats", tiny_run / "eval.h5", tiny_run / "eval.h5"])
