"""Properties every correct encoder has, on random small configs and inputs (hypothesis, NumPy backend).

- no NaN or inf anywhere (fully padded rows included: the reference's masked
  rows are uniform attention, never 0/0);
- padding invariance: other ids at padded positions, or more padding columns,
  leave the real positions unchanged;
- batch invariance: a batch equals its rows run one by one;
- head_mask of all ones equals no head_mask; a zero in head_mask zeroes that head's attention.
"""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from minidistil.modeling import classes as heads  # noqa: E402
from minidistil.testing import checks, strategies  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLASSES = tuple(heads.MODEL_CLASSES.values())


def _model(cls, config, seed):
    if cls is heads.DistilBertForQuestionAnswering:
        config = config.replace(num_labels=2)
    if cls is heads.DistilBertForSequenceClassification and config.num_labels == 1:
        config = config.replace(problem_type="regression")
    from minidistil.modeling.initialization import random_params

    params = random_params(config, seed, cls.head, std=config.initializer_range, perturb=True)
    return cls(config, params, backend="numpy")


@st.composite
def model_and_batch(draw, classes=CLASSES, **batch_kwargs):
    config = draw(strategies.configs(max_layers=2, max_heads=3, max_head_dim=8, max_hidden=24, max_positions=24))
    cls = draw(st.sampled_from(classes))
    seed = draw(st.integers(0, 2**16))
    batch = draw(strategies.token_batches(config, max_batch=3, max_len=10, **batch_kwargs))
    return _model(cls, config, seed), batch


def _call(model, ids, mask, **kwargs):
    if model.head == "multiple_choice":  # each row one question with a single choice
        return model(input_ids=ids[:, None], attention_mask=mask[:, None], **kwargs)
    return model(input_ids=ids, attention_mask=mask, **kwargs)


@SETTINGS
@given(model_and_batch())
def test_outputs_are_finite(case):
    model, (ids, mask) = case
    out = _call(model, ids, mask, output_hidden_states=True, output_attentions=True)
    for name, value in out.items():
        arrays = value if isinstance(value, tuple) else (value,)
        for i, a in enumerate(arrays):
            assert np.isfinite(a).all(), f"{type(model).__name__}: non-finite values in {name}[{i}]"
    for probs in out.attentions:
        rows = probs.sum(-1)
        np.testing.assert_allclose(rows, 1.0, atol=1e-5, err_msg="attention rows must sum to 1")
    fully_masked = ~mask.astype(bool).any(axis=1)
    for probs in out.attentions:  # the reference's uniform attention on a fully padded row
        np.testing.assert_allclose(probs[fully_masked], 1.0 / ids.shape[1], atol=1e-6)


@SETTINGS
@given(model_and_batch(padding_sides=("right",)))
def test_padding_invariance(case):
    model, (ids, mask) = case
    # DistilBERT's heads read position 0 ([CLS]); right padding keeps it real when the row has a token.
    checks.assert_padding_invariant(checks.model_callable(model), ids, mask, atol=1e-5, rtol=0)


@SETTINGS
@given(model_and_batch())
def test_batch_invariance(case):
    model, (ids, mask) = case
    checks.assert_batch_invariant(checks.model_callable(model), ids, mask, atol=1e-5, rtol=0, positions="all")


@SETTINGS
@given(model_and_batch(), st.data())
def test_head_mask(case, data):
    model, (ids, mask) = case
    config = model.config
    plain = _call(model, ids, mask, output_attentions=True)
    for shape in ((config.n_heads,), (config.n_layers, config.n_heads)):
        ones = _call(model, ids, mask, head_mask=np.ones(shape, np.float32), output_attentions=True)
        for key in plain:
            a, b = plain[key], ones[key]
            for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
                np.testing.assert_array_equal(x, y, err_msg=f"head_mask of ones {shape} changed {key}")
    layer = data.draw(st.integers(0, config.n_layers - 1))
    head = data.draw(st.integers(0, config.n_heads - 1))
    head_mask = np.ones((config.n_layers, config.n_heads), np.float32)
    head_mask[layer, head] = 0.0
    out = _call(model, ids, mask, head_mask=head_mask, output_attentions=True)
    assert not out.attentions[layer][:, head].any(), "a masked head must have zero attention"
    others = [h for h in range(config.n_heads) if h != head]
    np.testing.assert_array_equal(out.attentions[layer][:, others], plain.attentions[layer][:, others],
                                  err_msg="masking one head changed the other heads of its layer")
    for earlier in range(layer):
        np.testing.assert_array_equal(out.attentions[earlier], plain.attentions[earlier],
                                      err_msg="masking a head changed an earlier layer")
