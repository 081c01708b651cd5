"""The transformers API extras of the six classes: input/output embeddings as NumPy arrays, token_type_ids ignored.

Models come from the checkpoints under tests/golden/formats (written by the reference's tools).
"""

import numpy as np
import pytest

from minidistil import DistilBertForMaskedLM, DistilBertModelWithHeads
from minidistil.modeling.classes import MODEL_CLASSES

from format_goldens import ROOT

BASE = ROOT / "class_adapters" / "base"
ADAPTERS = ROOT / "class_adapters" / "adapters"
UNTIED_MLM = ROOT / "tf_flax" / "flax" / "mlm_untied"
IDS = np.array([[5, 9, 3, 12, 7], [8, 1, 4, 0, 0]])
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])


def mlm(path=BASE / "DistilBertForMaskedLM"):
    return DistilBertForMaskedLM.from_pretrained(path, backend="numpy")


def new_embeddings(model, seed=0):
    return np.random.default_rng(seed).standard_normal(model.get_input_embeddings().shape).astype(np.float32)


@pytest.mark.parametrize("class_name", sorted(MODEL_CLASSES))
def test_input_embeddings_are_the_word_embeddings(class_name):
    model = MODEL_CLASSES[class_name].from_pretrained(BASE / class_name, backend="numpy")
    emb = model.get_input_embeddings()
    assert emb.shape == (model.config.vocab_size, model.config.dim) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb, model.params["embeddings.word_embeddings.weight"])
    with pytest.raises(ValueError, match="read-only"):
        emb[0, 0] = 1.0  # changes go through set_input_embeddings, which the backend then sees
    assert (model.get_output_embeddings() is not None) == (class_name == "DistilBertForMaskedLM")


def test_set_input_embeddings_changes_the_tied_projection_too():
    model = mlm()
    new = new_embeddings(model)
    model.set_input_embeddings(new)
    np.testing.assert_array_equal(model.get_input_embeddings(), new)
    np.testing.assert_array_equal(model.get_output_embeddings(), new)  # tied: the projection is that matrix
    params = {**model.params, "embeddings.word_embeddings.weight": new}
    rebuilt = DistilBertForMaskedLM(model.config, params, backend="numpy")
    np.testing.assert_array_equal(model(input_ids=IDS, attention_mask=MASK).logits,
                                  rebuilt(input_ids=IDS, attention_mask=MASK).logits)


def test_untied_projection_stays():
    model = mlm(UNTIED_MLM)
    assert not model.config.tie_word_embeddings
    projector = model.get_output_embeddings().copy()
    model.set_input_embeddings(new_embeddings(model))
    np.testing.assert_array_equal(model.get_output_embeddings(), projector)


def test_set_input_embeddings_checks_what_it_gets():
    model = mlm()
    with pytest.raises(ValueError, match=r"shape \(vocab_size, dim\) = \(64, 16\), got \(65, 16\)"):
        model.set_input_embeddings(np.zeros((65, 16)))
    bad = new_embeddings(model)
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        model.set_input_embeddings(bad)


def test_merged_lora_follows_new_embeddings():
    model = mlm()
    model.load_adapter(ADAPTERS / "lora", set_active=True)
    model.set_input_embeddings(new_embeddings(model, 1))
    unmerged = model(input_ids=IDS, attention_mask=MASK).logits
    model.merge_adapter("lora")
    model.set_input_embeddings(new_embeddings(model, 2))
    merged = model(input_ids=IDS, attention_mask=MASK).logits
    model.reset_adapter()
    np.testing.assert_allclose(merged, model(input_ids=IDS, attention_mask=MASK).logits, atol=1e-5)
    assert np.abs(merged - unmerged).max() > 1e-3  # the second set took effect


@pytest.mark.parametrize("class_name", sorted(MODEL_CLASSES))
def test_token_type_ids_are_accepted_and_ignored(class_name):
    model = MODEL_CLASSES[class_name].from_pretrained(BASE / class_name, backend="numpy")
    ids, mask = (IDS[:, None].repeat(2, axis=1), MASK[:, None].repeat(2, axis=1)) if "MultipleChoice" in class_name else (IDS, MASK)
    plain = model(input_ids=ids, attention_mask=mask)
    bert_output = {"input_ids": ids, "attention_mask": mask, "token_type_ids": (np.arange(ids.shape[-1]) > 2) * np.ones_like(ids)}
    with_types = model(**bert_output)
    for field in plain:
        np.testing.assert_array_equal(with_types[field], plain[field])
    with pytest.raises(ValueError, match="token_type_ids has shape"):
        model(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros((1, 2), dtype=np.int64))


def test_model_with_heads_ignores_token_type_ids_too():
    model = DistilBertModelWithHeads.from_pretrained(BASE / "DistilBertModel", backend="numpy")
    plain = model(input_ids=IDS, attention_mask=MASK).last_hidden_state
    np.testing.assert_array_equal(model(input_ids=IDS, attention_mask=MASK, token_type_ids=np.ones_like(IDS)).last_hidden_state, plain)
