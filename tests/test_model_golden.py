"""Every class against the reference's outputs (tests/golden/model, written by tools/goldens/make_model_goldens.py).

Weights are regenerated from the seed recorded for each case (the goldens hold
only inputs and outputs), so the official-size checkpoint costs no disk.
Every output field is compared within 1e-4 absolute; the worst error per case
and backend is printed at the end of the module and named in any failure.
"""

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import golden_report

from minidistil.modeling import classes as heads
from minidistil.modeling.config import DistilBertConfig
from minidistil.modeling.initialization import random_params

GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "model"
TOLERANCE = golden_report.TOLERANCE
METADATA = json.loads((GOLDEN_DIR / "metadata.json").read_text()) if (GOLDEN_DIR / "metadata.json").exists() else None
CASES = METADATA["cases"] if METADATA else []


@lru_cache(maxsize=4)
def _encoder_params(config_json, seed, std, perturb):
    config = DistilBertConfig.from_dict(json.loads(config_json))
    return random_params(config, seed, None, std=std, perturb=perturb)


def case_params(case, config):
    """The case's weights: the cached encoder (shared by cases with the same seed) plus its head."""
    init = case["init"]
    encoder_fields = {k: v for k, v in case["config"].items() if k not in ("num_labels", "problem_type")}
    params = dict(_encoder_params(json.dumps(encoder_fields, sort_keys=True), init["seed"], init["std"], init["perturb"]))
    head = heads.MODEL_CLASSES[case["cls"]].head
    params.update(random_params(config, init["seed"], head, std=init["std"], perturb=init["perturb"], encoder=False))
    for name in case["omit_params"]:
        del params[name]
    return params


def _ours(out, key):
    parts = key.split(".")
    value = getattr(out, parts[0])
    if value is None:
        raise AssertionError(f"output field {parts[0]!r} is missing")
    if len(parts) == 2:
        value = value[int(parts[1])]
    return np.asarray(value)


def _error(ours, ref, key):
    assert ours.shape == ref.shape, f"{key}: shape {ours.shape}, reference {ref.shape}"
    both_nan = np.isnan(ours) & np.isnan(ref)
    if (np.isnan(ours) != np.isnan(ref)).any():
        return float("inf")
    diff = np.abs(np.where(both_nan, 0.0, ours.astype(np.float64) - ref.astype(np.float64)))
    return float(diff.max()) if diff.size else 0.0


def test_golden_metadata_present():
    assert METADATA is not None, f"{GOLDEN_DIR / 'metadata.json'} is missing: run tools/goldens/make_model_goldens.py"
    assert len(CASES) >= 10
    classes = {c["cls"] for c in CASES}
    assert classes == set(heads.MODEL_CLASSES), f"classes without a golden: {set(heads.MODEL_CLASSES) - classes}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_reference(case, kernel_backend):
    data = np.load(GOLDEN_DIR / f"{case['name']}.npz")
    config = DistilBertConfig.from_dict(case["config"])
    cls = heads.MODEL_CLASSES[case["cls"]]
    model = cls(config, case_params(case, config), backend=kernel_backend)

    kwargs = {k[3:]: data[k] for k in data.files if k.startswith("in.")}
    kwargs.update(case["flags"])
    out = model(**kwargs)

    errors = {}
    for key in (k[4:] for k in data.files if k.startswith("out.")):
        ours = _ours(out, key)
        spec = case["slices"].get(key.split(".")[0])
        if spec is not None:
            ours = np.take(ours, spec["index"], axis=spec["axis"])
        errors[key] = _error(ours, data["out." + key], key)
    if "extra.position_embeddings" in data.files:
        table = model.params["embeddings.position_embeddings.weight"]
        errors["sinusoidal table"] = _error(np.asarray(table), data["extra.position_embeddings"], "table")

    # every output the reference gave is one we give, and no more
    expected_fields = {k.split(".")[0] for k in case["outputs"]}
    assert set(out.keys()) == expected_fields, f"fields {sorted(out.keys())}, reference {sorted(expected_fields)}"

    worst_key = max(errors, key=errors.get)
    golden_report.record("model goldens", kernel_backend, case["name"], errors[worst_key], worst_key)
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    assert not bad, (
        f"{case['name']} on {kernel_backend}: worst abs error {errors[worst_key]:.3e} in {worst_key} "
        f"(tolerance {TOLERANCE:g}); over tolerance: " + ", ".join(f"{k} {v:.3e}" for k, v in sorted(bad.items()))
    )
