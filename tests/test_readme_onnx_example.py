"""The README's worked example (docs/onnx_example.py, run as it is): property-testing an ONNX Runtime
export of a model against minidistil. Needs the dev-only onnxruntime, torch, transformers and onnx."""

import importlib.util
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "onnx_example.py"
EXPORT_TOOL = ROOT / "tools" / "checks" / "export_onnx.py"

pytest.importorskip("onnxruntime", reason="the README's ONNX example needs onnxruntime, a dev-only dependency")
pytest.importorskip("hypothesis", reason="the README's ONNX example needs hypothesis (extra 'testing')")
for _module in ("torch", "transformers", "onnx"):
    pytest.importorskip(_module, reason=f"exporting the example's ONNX model needs {_module}, a dev-only dependency")

from minidistil import DistilBertConfig  # noqa: E402
from minidistil.testing import InvariantViolation, write_checkpoint  # noqa: E402

CONFIG = DistilBertConfig(vocab_size=64, dim=16, n_heads=2, n_layers=2, hidden_dim=32, max_position_embeddings=32,
                          activation="gelu")


def _export_tool():
    spec = importlib.util.spec_from_file_location("export_onnx", EXPORT_TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_example")
    checkpoint = write_checkpoint(CONFIG, seed=11, directory=root)
    onnx_file = _export_tool().export(checkpoint, root / "model.onnx")
    return checkpoint, onnx_file


def run_example(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), *map(str, argv)])
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(EXAMPLE), run_name="__main__")


def test_example_passes_on_a_faithful_export(exported, monkeypatch, capsys):
    checkpoint, onnx_file = exported
    run_example(monkeypatch, checkpoint, onnx_file)
    assert "agrees with minidistil on 50 random batches" in capsys.readouterr().out


def test_example_catches_an_export_of_other_weights(exported, monkeypatch, tmp_path):
    _, onnx_file = exported
    other = write_checkpoint(CONFIG, seed=12, directory=tmp_path)  # same shapes, other weights
    with pytest.raises(InvariantViolation, match="agreement with the reference violated") as info:
        run_example(monkeypatch, other, onnx_file)
    assert "largest difference" in str(info.value) and "input_ids = [[" in str(info.value)
