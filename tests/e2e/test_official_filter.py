"""filter.implementation = official: KPO trained through the official code's
float32 parallel filter over responses padded to official_width, with verl's
skip of non-finite updates. Padded past the token where its gains turn NaN
(872 at Q = 0.01, V = 1), every update is skipped and counted; short of it,
the official filter trains like the exact one."""
import h5py
import numpy as np

from conftest import run, write_config


def train(tmp_path, tiny_model, name, **filter_settings):
    learner = filter_settings.pop("learner", {})
    config = write_config(tmp_path / f"{name}.ini", tiny_model, tmp_path / name,
                          run={"steps": 2, "checkpoint_every": 0},
                          filter={"q": 0.01, "v": 1, "mode": "none", **filter_settings},
                          learner={"objective": "kpo", "minibatches": 2, **learner})
    return config, run(["train", config], check=False)


def metrics(tmp_path, name):
    with h5py.File(tmp_path / name / "run.h5") as f:
        return {k: np.array(f["metrics"][k][:]) for k in ("updates", "skipped_updates", "loss")}


def test_nan_gains_skip_every_update(tmp_path, tiny_model):
    _, r = train(tmp_path, tiny_model, "nan", implementation="official", official_width=1000)
    assert r.returncode == 0, r.stderr
    m = metrics(tmp_path, "nan")
    assert list(m["updates"]) == [0, 0]
    assert list(m["skipped_updates"]) == [2, 2]


def test_short_width_trains_like_the_exact_filter(tmp_path, tiny_model):
    for name, settings in [("official", {"implementation": "official"}), ("exact", {})]:
        _, r = train(tmp_path, tiny_model, name, **settings)
        assert r.returncode == 0, r.stderr
    official, exact = metrics(tmp_path, "official"), metrics(tmp_path, "exact")
    assert list(official["updates"]) == [2, 2]
    # float32 against double on a few-token filter: the same first step
    assert abs(official["loss"][0] - exact["loss"][0]) <= 1e-5 * max(abs(exact["loss"][0]), 1e-3)


def test_fail_instead_of_skip(tmp_path, tiny_model):
    _, r = train(tmp_path, tiny_model, "fail", implementation="official", official_width=1000,
                 learner={"nonfinite_update": "fail"})
    assert r.returncode != 0
    assert "nonfinite_update = fail" in r.stderr


def test_official_needs_plain_kpo(tmp_path, tiny_model):
    _, r = train(tmp_path, tiny_model, "sigma", implementation="official", mode="sigma")
    assert r.returncode != 0
    assert "filter.implementation = official" in r.stderr
    assert not (tmp_path / "sigma").exists()
