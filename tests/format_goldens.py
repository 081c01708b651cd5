"""Shared by the checkpoint-format golden tests (TF / Flax, ONNX, adapters on the plain classes).

    golden = Golden("tf_flax", "TF / Flax goldens")   # tests/golden/formats/tf_flax: manifest.json, inputs.npz, expected.npz
    errors = golden.compare(out, case)         # {field: max |ours - reference|}, each field checked for shape
    golden.record("numpy", name, errors)       # asserts <= 1e-4; the worst errors go to the run's summary (golden_report)
"""

import json
from pathlib import Path

import numpy as np

import golden_report

ROOT = Path(__file__).resolve().parent / "golden" / "formats"
TOLERANCE = golden_report.TOLERANCE


class Golden:
    def __init__(self, name, title):
        self.dir = ROOT / name
        self.title = title  # the heading of this golden's table in the run's summary
        self.manifest = json.loads((self.dir / "manifest.json").read_text())
        self.cases = self.manifest["cases"]
        self._expected = self._inputs = None

    @property
    def expected(self):
        if self._expected is None:
            self._expected = dict(np.load(self.dir / "expected.npz"))
        return self._expected

    @property
    def inputs(self):
        if self._inputs is None:
            self._inputs = dict(np.load(self.dir / "inputs.npz"))
        return self._inputs

    def ids_and_mask(self, case):
        prefix = "mc_" if case["inputs"] == "mc" else ""
        return self.inputs[f"{prefix}input_ids"], self.inputs[f"{prefix}attention_mask"]

    def compare(self, out, case):
        """{field: worst abs error} of every reference output of `case` ("hidden_states.2" indexes a tuple)."""
        errors = {}
        for field, key in case["outputs"].items():
            name, _, index = field.partition(".")
            ours = out[name] if not index else out[name][int(index)]
            ours, ref = np.asarray(ours, dtype=np.float64), self.expected[key].astype(np.float64)
            assert ours.shape == ref.shape, f"{field}: shape {ours.shape}, reference {ref.shape}"
            errors[field] = float(np.abs(ours - ref).max()) if ref.size else 0.0
        assert errors, "no outputs compared"
        return errors

    def record(self, backend, name, errors):
        field = max(errors, key=errors.get)
        golden_report.record(self.title, backend, name, errors[field], field)
        assert errors[field] <= TOLERANCE, f"{name} on {backend}: worst abs error {errors[field]:.3e} in {field} {errors}"
