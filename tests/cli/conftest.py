"""Shared helpers for the tests that drive the kpo binary."""
import os
import subprocess

import pytest

KPO = os.environ.get("KPO_BIN", os.path.join(os.getcwd(), "build", "kpo"))


def run_kpo(*args, stdin=None, check=True):
    """Runs kpo; returns CompletedProcess with text stdout/stderr."""
    result = subprocess.run([KPO, *map(str, args)], input=stdin, capture_output=True,
                            text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"kpo {' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stderr}")
    return result


def build_has(feature):
    info = run_kpo("info").stdout
    return f"{feature}=yes" in info


@pytest.fixture(scope="session")
def require_hdf5():
    if not build_has("hdf5"):
        pytest.skip("kpo was built without HDF5: run-file tests skipped")


def parse_csv(text):
    lines = [line for line in text.strip().splitlines() if line]
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]
