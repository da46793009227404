"""Corrupt-file generator for the reliability suite: rewrites one dataset
(or attribute) of a copy of a real run file or eval file with a wrong
shape, rank, dtype or a flipped count. Each case says which kpo reader must
refuse it and which dataset the refusal must name.

    python3 corrupt_files.py RUN.h5 EVAL.h5 OUT_DIR   # writes OUT_DIR/<case>.h5
"""
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

FLIPPED = 140737488355488   # a sample count seen flipped in the wild (0x7fffffffe6a0)


def replace(f, path, data):
    """Replaces dataset `path` by `data`, keeping its attributes."""
    attrs = dict(f[path].attrs)
    del f[path]
    d = f.create_dataset(path, data=data)
    for k, v in attrs.items():
        d.attrs[k] = v


def rows(f, path):
    return f[path].shape[0]


def wide(f, path, cols, dtype):
    replace(f, path, np.zeros((4, cols), dtype=dtype))


def flip_first(path, value=FLIPPED):
    def mutate(f):
        data = f[path][:]
        data.flat[0] = value
        f[path][...] = data
    return mutate


def rewrite(path, change):
    """A mutation replacing dataset `path` by change(its contents)."""
    return lambda f: replace(f, path, change(f[path][:]))


def retyped(path, dtype):
    return rewrite(path, lambda data: data.astype(dtype))


def column(path):
    """Dataset `path` as one column: 1-D becomes [n, 1]."""
    return rewrite(path, lambda data: data.reshape(-1, 1))


# (name, file kind, mutation, reader, dataset the error must name)
# reader: diag, diag-minibatches, filter, stats, resume
CASES = [
    ("steps_2d_wide", "run", lambda f: wide(f, "steps/step", 20000, np.int64),
     "diag", "/steps/step"),
    ("steps_2d_wide_resume", "run", lambda f: wide(f, "steps/step", 20000, np.int64),
     "resume", "/steps/step"),
    ("steps_float", "run",
     retyped("steps/step", np.float64),
     "diag", "/steps/step"),
    ("steps_int32", "run",
     retyped("steps/step", np.int32),
     "diag", "/steps/step"),
    ("steps_string", "run",
     lambda f: replace(f, "steps/step", np.array([b"one", b"two", b"six", b"ten"])),
     "diag", "/steps/step"),
    ("steps_scalar", "run", lambda f: replace(f, "steps/step", np.int64(4)),
     "diag", "/steps/step"),
    ("accumulator_2d_wide", "run",
     lambda f: wide(f, "innovation/accumulator", 20000, np.float64),
     "diag", "/innovation/accumulator"),
    ("accumulator_narrow", "run",
     rewrite("innovation/accumulator", lambda data: data[:, :10]),
     "diag", "/innovation/accumulator"),
    ("accumulator_1d", "run",
     rewrite("innovation/accumulator", np.ravel),
     "diag", "/innovation/accumulator"),
    ("accumulator_3d", "run",
     lambda f: replace(f, "innovation/accumulator",
                       f["innovation/accumulator"][:].reshape(rows(f, "steps/step"), 7, 11)),
     "diag", "/innovation/accumulator"),
    ("accumulator_int", "run",
     retyped("innovation/accumulator", np.int64),
     "diag", "/innovation/accumulator"),
    ("minibatch_acc_narrow", "run",
     rewrite("innovation/minibatch_accumulator", lambda data: data[:, :77]),
     "diag-minibatches", "/innovation/minibatch_accumulator"),
    ("minibatch_acc_wide", "run",
     lambda f: wide(f, "innovation/minibatch_accumulator", 20000, np.float64),
     "diag-minibatches", "/innovation/minibatch_accumulator"),
    ("minibatches_attr_flipped", "run",
     lambda f: f["innovation/minibatch_accumulator"].attrs.modify("minibatches", FLIPPED),
     "diag-minibatches", "/innovation/minibatch_accumulator"),
    ("offsets_2d_wide", "run", lambda f: wide(f, "samples/offsets", 5000, np.int64),
     "filter", "/samples/offsets"),
    ("offsets_float", "run",
     retyped("samples/offsets", np.float64),
     "filter", "/samples/offsets"),
    ("lengths_2d", "run",
     column("samples/lengths"),
     "filter", "/samples/lengths"),
    ("lengths_short", "run",
     rewrite("samples/lengths", lambda data: data[:3]),
     "filter", "/samples/lengths"),
    ("lengths_flipped", "run", flip_first("samples/lengths"), "filter", "/samples/lengths"),
    ("offsets_flipped", "run", flip_first("samples/offsets"), "filter", "/samples/offsets"),
    ("sample_step_2d", "run", lambda f: wide(f, "samples/step", 5000, np.int64),
     "filter", "/samples/step"),
    ("sample_minibatch_float", "run",
     retyped("samples/minibatch", np.float64),
     "filter", "/samples/minibatch"),
    ("sample_minibatch_flipped", "run", flip_first("samples/minibatch", -FLIPPED),
     "filter", "/samples/minibatch"),
    ("values_2d", "run",
     column("samples/values"),
     "filter", "/samples/values"),
    ("values_int", "run",
     retyped("samples/values", np.int64),
     "filter", "/samples/values"),
    ("correct_2d_wide", "eval", lambda f: wide(f, "bench/arith/correct", 5000, np.int64),
     "stats", "/bench/arith/correct"),
    ("correct_float", "eval",
     retyped("bench/arith/correct", np.float64),
     "stats", "/bench/arith/correct"),
    ("samples_flipped", "eval", flip_first("bench/arith/samples"), "stats",
     "/bench/arith/samples"),
    ("samples_short", "eval",
     rewrite("bench/arith/samples", lambda data: data[:2]),
     "stats", "/bench/arith/samples"),
    ("samples_2d", "eval",
     column("bench/arith/samples"),
     "stats", "/bench/arith/samples"),
    ("problem_index_2d", "eval",
     lambda f: wide(f, "bench/arith/problem_index", 5000, np.int64),
     "stats", "/bench/arith/problem_index"),
]


def make(case, run_file, eval_file, out_dir):
    """Writes out_dir/<name>.h5, the corrupted copy; returns its path."""
    name, kind, mutate = case[0], case[1], case[2]
    out = Path(out_dir) / f"{name}.h5"
    shutil.copyfile(run_file if kind == "run" else eval_file, out)
    with h5py.File(out, "r+") as f:
        mutate(f)
    return out


if __name__ == "__main__":
    for c in CASES:
        print(make(c, sys.argv[1], sys.argv[2], sys.argv[3]))
