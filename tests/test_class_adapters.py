"""Adapters on the six plain classes against the adapters library run on those classes (`adapters.init`).

Goldens: tests/golden/formats/class_adapters, written by tools/goldens/make_class_adapter_goldens.py
(adapters saved by the library's save_adapter; outputs of the library's models that loaded them).
"""

import numpy as np
import pytest

import minidistil
from minidistil import AdapterError, Parallel, Stack
from minidistil.modeling.classes import MODEL_CLASSES

from format_goldens import Golden

GOLDEN = Golden("class_adapters", "adapters on the plain classes vs adapters 1.3")
CASES = GOLDEN.cases
ADAPTERS = sorted(GOLDEN.manifest["adapters"])



def setup_from_spec(spec):
    if spec is None or isinstance(spec, str):
        return spec
    (kind, children), = spec.items()
    return {"Stack": Stack, "Parallel": Parallel}[kind](*children)


def loaded(class_name, backend="numpy"):
    model = MODEL_CLASSES[class_name].from_pretrained(GOLDEN.dir / "base" / class_name, backend=backend)
    for name in ADAPTERS:
        assert model.load_adapter(GOLDEN.dir / "adapters" / name) == name
    assert model.active_adapters is None  # loading does not activate, as in the adapters library
    return model


def run_case(case, backend="numpy"):
    model = loaded(case["class_name"], backend)
    if case["active"] is not None:
        model.set_active_adapters(setup_from_spec(case["active"]))
    if case["merge"]:
        model.merge_adapter(case["merge"])
    ids, mask = GOLDEN.ids_and_mask(case)
    return model(input_ids=ids, attention_mask=mask, adapter_names=setup_from_spec(case["per_call"]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_the_adapters_library(name):
    GOLDEN.record("numpy", name, GOLDEN.compare(run_case(CASES[name]), CASES[name]))


@pytest.mark.parametrize("name", ["DistilBertForMaskedLM/stack", "DistilBertForMultipleChoice/parallel",
                                  "DistilBertForQuestionAnswering/lora_merged", "DistilBertModel/houlsby_per_call"])
def test_numba_backend_matches_too(name):
    GOLDEN.record("numba", name, GOLDEN.compare(run_case(CASES[name], "numba"), CASES[name]))


def test_goldens_are_not_vacuous():
    """Every adapter changes every class's output (seeded weights), and no adapter is the plain model."""
    expected = GOLDEN.expected
    for class_name in MODEL_CLASSES:
        for case in ("bn", "par", "lora", "ia3", "houlsby_per_call", "stack", "lora_merged"):
            for field, key in CASES[f"{class_name}/{case}"]["outputs"].items():
                plain = expected[CASES[f"{class_name}/inactive"]["outputs"][field]]
                assert np.abs(expected[key] - plain).max() > 1e-3, (class_name, case, field)
    assert {c["class_name"] for c in CASES.values()} == set(MODEL_CLASSES)


def test_inactive_adapters_leave_the_plain_model():
    case = CASES["DistilBertForSequenceClassification/inactive"]
    plain = MODEL_CLASSES[case["class_name"]].from_pretrained(GOLDEN.dir / case["base"], backend="numpy")
    ids, mask = GOLDEN.ids_and_mask(case)
    np.testing.assert_array_equal(plain(input_ids=ids, attention_mask=mask).logits, run_case(case).logits)


def test_parallel_output_holds_each_channel_in_turn():
    case = CASES["DistilBertForTokenClassification/parallel"]
    out = run_case(case)
    ids, mask = GOLDEN.ids_and_mask(case)
    model = loaded(case["class_name"])
    for i, name in enumerate(case["active"]["Parallel"]):
        alone = model(input_ids=ids, attention_mask=mask, adapter_names=name).logits
        np.testing.assert_allclose(out.logits[i * len(ids):(i + 1) * len(ids)], alone, atol=1e-6)


def test_adapter_api_on_a_plain_class():
    model = loaded("DistilBertForSequenceClassification")
    ids, mask = GOLDEN.ids_and_mask(CASES["DistilBertForSequenceClassification/lora"])
    plain = model(input_ids=ids, attention_mask=mask).logits
    model.set_active_adapters("lora")
    with_lora = model(input_ids=ids, attention_mask=mask).logits
    model.merge_adapter("lora")
    np.testing.assert_allclose(model(input_ids=ids, attention_mask=mask).logits, with_lora, atol=1e-5)
    model.reset_adapter()
    np.testing.assert_allclose(model(input_ids=ids, attention_mask=mask).logits, with_lora, atol=1e-6)
    with pytest.raises(AdapterError, match="only LoRA"):
        model.merge_adapter("bn")
    with pytest.raises(AdapterError, match="unknown adapter 'nope'; loaded adapters: bn, bn2, houlsby, ia3, lora, par"):
        model(input_ids=ids, attention_mask=mask, adapter_names="nope")
    with pytest.raises(ValueError, match="pass hooks or use adapters"):
        model(input_ids=ids, attention_mask=mask, hooks=object())
    model.delete_adapter("lora")
    assert model.active_adapters is None  # the deleted adapter was active
    np.testing.assert_array_equal(model(input_ids=ids, attention_mask=mask).logits, plain)
    assert model.load_adapter(GOLDEN.dir / "adapters" / "lora", load_as="again", set_active=True) == "again"
    assert model.active_adapters == Stack("again")


def test_framework_names_take_adapters_too():
    case = CASES["DistilBertForMaskedLM/ia3"]
    model = minidistil.TFDistilBertForMaskedLM.from_pretrained(GOLDEN.dir / case["base"], backend="numpy")
    model.load_adapter(GOLDEN.dir / "adapters" / "ia3")
    ids, mask = GOLDEN.ids_and_mask(case)
    out = model({"input_ids": ids, "attention_mask": mask}, adapter_names="ia3")
    assert GOLDEN.compare(out, case)["logits"] <= 1e-4
