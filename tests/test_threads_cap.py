"""`threads=` / `--threads` / $MINIDISTIL_THREADS above the cores this process may use: capped, warned once."""

import os
import warnings

import pytest

import minidistil.kernels as kernels

from pipeline_models import build_model_dir
from test_cli import run


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(kernels, "available_cores", lambda: 2)
    monkeypatch.setattr(kernels, "_WARNED_CAPS", set())
    monkeypatch.delenv(kernels.THREADS_ENV, raising=False)


def test_available_cores_is_the_affinity_mask():
    assert kernels.available_cores() == len(os.sched_getaffinity(0))


def test_more_threads_than_cores_are_capped_with_one_warning(two_cores):
    with pytest.warns(RuntimeWarning, match="threads=64 is more than the 2 cores this process may use: using 2"):
        assert kernels.resolve_threads(64) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second time: no warning at all
        assert kernels.resolve_threads(64) == 2
        assert kernels.resolve_threads(2) == 2 and kernels.resolve_threads(1) == 1  # within the cores: as asked


def test_the_environment_variable_is_capped_too(two_cores, monkeypatch):
    monkeypatch.setenv(kernels.THREADS_ENV, "8")
    with pytest.warns(RuntimeWarning, match=r"\$MINIDISTIL_THREADS=8 is more than the 2 cores"):
        ops = kernels.get_ops("numpy")
    assert ops.threads == 2


def test_the_cli_warns_once_and_runs(two_cores, capsys, monkeypatch, tmp_path):
    model = build_model_dir("classifier", tmp_path / "classifier")
    code, out, err = run(capsys, monkeypatch, "classify", "--model", model, "--backend", "numpy", "--threads", "64",
                         "Fine.")
    assert code == 0 and out, err
    assert err.splitlines() == [
        "minidistil: warning: threads=64 is more than the 2 cores this process may use: using 2 "
        "(more threads than cores only wait for each other)"
    ]
