"""The wheel installs one top-level package, `minidistil`, and lives beside PyPI's unrelated `kernels`.

The repository keeps `kernels/` beside `minidistil/`; pyproject.toml maps it to `minidistil.kernels`.
Building the wheel needs setuptools (the dev environment has it); fetching PyPI's `kernels` needs the
package registry, which CI reaches: without it the coexistence check skips and says so.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPI_KERNELS = "kernels==0.17.2"  # a real release of the PyPI package that shares the name


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # A copy without build/ (setuptools would put stale files of an earlier build into the wheel) or venvs.
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", ".venv*", "*.egg-info", "__pycache__",
                                                                "bench-results", ".hypothesis", ".pytest_cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (path,) = out.glob("minidistil-*.whl")
    return path


def test_wheel_has_one_top_level_package(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"minidistil"}
    assert "minidistil/kernels/__init__.py" in names and "minidistil/kernels/softmax.cu" in names
    assert "minidistil/data/bert_unicode.json" in names
    for package in ("tokenization", "checkpoints", "modeling", "adapters", "pipelines", "testing"):
        assert f"minidistil/{package}/__init__.py" in names, package


@pytest.mark.slow
def test_installs_and_runs_beside_pypi_kernels(wheel, tmp_path):
    downloads = tmp_path / "downloads"
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(downloads), PYPI_KERNELS],
        capture_output=True, text=True, timeout=300,
    )
    if fetched.returncode != 0:
        pytest.skip(f"cannot fetch {PYPI_KERNELS} from the package registry: {fetched.stderr.strip()[-200:]}")
    target = tmp_path / "site"
    for path in [*downloads.glob("*.whl"), wheel]:  # theirs first, ours second: ours must not overwrite theirs
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(path)],
            check=True, capture_output=True, text=True, timeout=300,
        )
    probe = (
        "import importlib.util, numpy as np\n"
        "from minidistil.kernels import get_ops\n"
        "import minidistil.kernels as ours\n"
        "theirs = importlib.util.find_spec('kernels').origin\n"
        "ops = get_ops('numpy')\n"
        "y = ops.linear(np.ones((1, 2), np.float32), np.ones((3, 2), np.float32), np.zeros(3, np.float32))\n"
        "print(ours.__file__); print(theirs); print(y.tolist())\n"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ours_file, theirs_file, result = done.stdout.splitlines()
    assert ours_file == str(target / "minidistil" / "kernels" / "__init__.py")
    assert theirs_file == str(target / "kernels" / "__init__.py")
    assert "_rust" in (target / "kernels" / "__init__.py").read_text() or (target / "kernels" / "_rust.pyi").exists()
    assert result == "[[2.0, 2.0, 2.0]]"
