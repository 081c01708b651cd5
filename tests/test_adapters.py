"""Adapters and flex heads against the reference adapter library (goldens from tools/goldens/make_adapter_goldens.py).

Every case loads the reference library's own saved files (save_adapter / save_head) into a
fresh DistilBertModelWithHeads and compares its outputs with the library's within 1e-4.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from minidistil import DistilBertModelWithHeads, Parallel, Stack

GOLDEN = Path(__file__).resolve().parent / "golden" / "adapters"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
CASES = MANIFEST["cases"]
TOL = 1e-4


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(GOLDEN / "expected.npz"))


@pytest.fixture(scope="module")
def inputs():
    return dict(np.load(GOLDEN / "inputs.npz"))


def setup_from_spec(spec):
    """The manifest's {"Stack": [...]} / {"Parallel": [...]} / "name" as a composition."""
    if spec is None or isinstance(spec, str):
        return spec
    (kind, children), = spec.items()
    return {"Stack": Stack, "Parallel": Parallel}[kind](*[setup_from_spec(c) for c in children])


def build(case, backend="numpy"):
    model = DistilBertModelWithHeads.from_pretrained(GOLDEN / case.get("base", "base"), backend=backend)
    for name in case.get("adapters", []):
        assert model.load_adapter(GOLDEN / "adapters" / name) == name
    for name in case.get("heads", []):
        assert model.load_head(GOLDEN / "heads" / name) == name
    if "active" in case:
        model.set_active_adapters(setup_from_spec(case["active"]))
    if case.get("merge"):
        model.merge_adapter(case["merge"])
    return model


def run(model, case, inputs):
    if case["inputs"] == "mc":
        ids, mask = inputs["mc_input_ids"], inputs["mc_attention_mask"]
    else:
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
    kwargs = dict(output_hidden_states=True)
    if case.get("per_call"):
        kwargs["adapter_names"] = setup_from_spec(case["per_call"])
    if case.get("head"):
        kwargs["head"] = case["head"]
    kwargs.update({key: inputs[array] for key, array in case.get("targets", {}).items()})
    return model(input_ids=ids, attention_mask=mask, **kwargs)


def field(out, key):
    if key.startswith("head") and "." in key:  # a Parallel / multi-head output: head<i>.<field>
        index, name = key.split(".", 1)
        return out[int(index[len("head"):])][name]
    if key == "last_hidden_state" and "last_hidden_state" not in out:
        return out.hidden_states[-1]  # a head's output carries the encoder's states in hidden_states
    return out[key]


def max_errors(out, case, expected):
    return {key: float(np.max(np.abs(np.asarray(field(out, key)) - expected[ref]))) for key, ref in case["outputs"].items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_reference_library(name, expected, inputs):
    case = CASES[name]
    model = build(case)
    out = run(model, case, inputs)
    errors = max_errors(out, case, expected)
    assert errors, f"{name}: no outputs compared"
    worst = max(errors.values())
    assert worst <= TOL, f"{name}: max |error| per output {errors}"
    if case.get("reference_head") is not None and not case.get("head") and ("active" in case or "base" in case):
        assert model.active_head == case["reference_head"]


def test_every_kind_and_head_type_is_covered():
    """The goldens exercise each adapter kind and each head type the issue lists."""
    adapters = MANIFEST["adapters"]
    configs = {name: json.loads((GOLDEN / "adapters" / name / "adapter_config.json").read_text())["config"] for name in adapters}
    lora = [c for c in configs.values() if c.get("architecture") == "lora"]
    bottleneck = [c for c in configs.values() if c.get("architecture") is None]
    assert any(c["original_ln_before"] and not c["mh_adapter"] for c in bottleneck)  # seq_bn
    assert any(c["mh_adapter"] and c["output_adapter"] for c in bottleneck)  # double_seq_bn
    for key in ("ln_before", "ln_after", "use_gating", "is_parallel", "adapter_residual_before_ln"):
        assert any(c[key] for c in bottleneck), key
    assert any(c["residual_before_ln"] is False for c in bottleneck)
    assert {str(c["scaling"]) for c in bottleneck} >= {"1.0", "0.5", "learned", "channel"}
    assert any(c["composition_mode"] == "add" for c in lora) and any(c["composition_mode"] == "scale" for c in lora)
    assert any(c["intermediate_lora"] and c["output_lora"] for c in lora)
    kinds = {json.loads((GOLDEN / "heads" / h / "head_config.json").read_text())["config"]["head_type"] for h in MANIFEST["heads"]}
    assert kinds >= {"classification", "multilabel_classification", "tagging", "question_answering", "masked_lm", "multiple_choice"}
    covered = set(CASES)
    assert {"merged_lora", "merged_lora_all", "stack_lang_task", "parallel_pfeiffer_task", "per_call_houlsby_qa",
            "static_cls_default_head"} <= covered


@pytest.mark.parametrize("name", ["stack_lang_task", "stack_lora_pfeiffer", "adapter_houlsby_gated", "merged_lora_all", "head_mlm"])
def test_numba_backend_matches_too(name, expected, inputs):
    case = CASES[name]
    out = run(build(case, backend="numba"), case, inputs)
    errors = max_errors(out, case, expected)
    assert max(errors.values()) <= TOL, errors
