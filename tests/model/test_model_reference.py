"""kpo's CPU model against the independent PyTorch reference
(tests/reference/qwen3_reference.py): logits, log-probs, entropies, the loss
and every parameter gradient, for tied and untied embeddings, GQA ratios 1,
2 and 4, and head_dim != hidden / heads."""
import os
import subprocess
import sys

import pytest

SOURCE = os.environ["KPO_SOURCE_ROOT"]
REFERENCE = os.path.join(SOURCE, "tests", "reference", "qwen3_reference.py")
CHECK = os.environ["KPO_MODEL_REF_CHECK"]


def make_reference(variant, out):
    subprocess.run([sys.executable, REFERENCE, "make", "--variant", variant, "--out", str(out)],
                   check=True)


@pytest.mark.parametrize("variant", ["tied_gqa1", "untied_gqa4", "tied_gqa2"])
def test_forward_backward_match_reference(variant, tmp_path):
    make_reference(variant, tmp_path)
    result = subprocess.run([CHECK, str(tmp_path), "1e-4"], capture_output=True, text=True)
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
