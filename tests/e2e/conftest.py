"""Fixtures for the end-to-end training tests: a tiny random Qwen3 model for
the byte tokenizer; the helpers to run kpo (alone or under mpirun) and write
configs live in kpo_run.py, re-exported here for the test files."""
import pytest

from kpo_run import KPO, MPI_ENV, run, write_config  # noqa: F401 (re-exported)
import kpo_run


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return kpo_run.tiny_model(tmp_path_factory.mktemp("model"))
