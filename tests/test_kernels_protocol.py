"""Every backend declares and implements the whole `Ops` protocol, and the model uses nothing else.

The classes are checked without their devices (gpu.py imports cupy only when
a CupyOps is made); instances of the CPU backends here, the CuPy one in
test_gpu.py (on the emulated device, and on a real one where there is one).
"""

import inspect
import re
from pathlib import Path

import pytest

from minidistil.kernels import Ops, get_ops, gpu, reference

ROOT = Path(__file__).resolve().parent.parent
METHODS = [name for name, value in vars(Ops).items() if inspect.isfunction(value) and not name.startswith("_")]
ATTRIBUTES = list(Ops.__annotations__)
MEMBERS = METHODS + ATTRIBUTES


def backend_classes():
    classes = [reference.NumpyOps, gpu.CupyOps]
    try:
        from minidistil.kernels import cpu
    except ImportError:  # numba missing: that backend does not exist here
        return classes
    return classes + [cpu.NumbaOps]


def _parameters(function):
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_protocol_names_every_op():
    assert set(METHODS) == {"prepare", "asarray", "to_numpy", "linear", "embed", "activation", "attention_probs",
                            "attention_context", "attention", "layernorm"}
    assert ATTRIBUTES == ["name", "keeps_outputs_on_device", "quantize_modes"]


@pytest.mark.parametrize("cls", backend_classes(), ids=lambda cls: cls.__name__)
def test_backend_class_implements_every_member_with_the_protocols_signature(cls):
    assert Ops in cls.__mro__, f"{cls.__name__} does not declare Ops"  # (issubclass refuses protocols with data members)
    for name in METHODS:
        owner = next(c for c in cls.__mro__ if name in vars(c))
        assert owner is not Ops, f"{cls.__name__}.{name} is missing (only the protocol's empty stub is there)"
        assert _parameters(getattr(cls, name)) == _parameters(getattr(Ops, name)), f"{cls.__name__}.{name}"
    assert isinstance(cls.name, str) and cls.name in ("numpy", "numba", "cupy")
    assert isinstance(cls.keeps_outputs_on_device, bool)
    assert cls.keeps_outputs_on_device == (cls.name == "cupy")
    assert cls.quantize_modes == (() if cls.name == "cupy" else ("int8",))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_cpu_backends_are_ops(backend):
    if backend == "numba":
        pytest.importorskip("numba")
    ops = get_ops(backend)
    assert isinstance(ops, Ops) and ops.name == backend and ops.keeps_outputs_on_device is False


def test_the_model_calls_only_ops_of_the_protocol():
    """Every `ops.<member>` in minidistil/ is a member of Ops: the protocol documents all the model needs."""
    used = set()
    for path in (ROOT / "minidistil").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"\bops\.(\w+)", text))
        used |= set(re.findall(r"getattr\((?:self\.)?ops, ['\"](\w+)['\"]", text))
    assert used, "no ops.<member> found in minidistil/: the scan is broken"
    assert used <= set(MEMBERS), f"used by the model but not in the Ops protocol: {sorted(used - set(MEMBERS))}"
