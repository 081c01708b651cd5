"""The six classes: outputs, input validation, loading (heads present, missing, foreign, unknown), saving, hooks."""

import copy
import json
import pickle
import warnings

import numpy as np
import pytest

import minidistil
from minidistil import CheckpointError, ConfigError
from minidistil.errors import MissingHeadError
from minidistil.modeling import classes as heads
from minidistil.checkpoints.saving import save_checkpoint
from minidistil.modeling.config import DistilBertConfig
from minidistil.modeling.initialization import random_params, sinusoidal_position_embeddings
from minidistil.modeling.outputs import MaskedLMOutput, ModelOutput
from minidistil.checkpoints.safetensors_io import read_header, read_safetensors, write_safetensors
from minidistil.kernels.reference import NumpyOps

CONFIG = DistilBertConfig(vocab_size=50, max_position_embeddings=16, n_layers=2, n_heads=2, dim=8, hidden_dim=12,
                          num_labels=3)
IDS = np.array([[1, 5, 9, 2, 0], [3, 4, 0, 0, 0]])
MASK = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])


def make(cls, config=CONFIG, seed=0, **kw):
    if cls is heads.DistilBertForQuestionAnswering:
        config = config.replace(num_labels=2)
    return cls(config, random_params(config, seed, cls.head, std=0.2, perturb=True), backend="numpy", **kw)


def call(model, **kw):
    ids, mask = IDS, MASK
    if model.head == "multiple_choice":
        ids, mask = ids[None], mask[None]
    return model(input_ids=ids, attention_mask=mask, **kw)


def main_output(out):
    return out.get("last_hidden_state", out.get("logits", out.get("start_logits")))


ALL = list(heads.MODEL_CLASSES.values())


# ------------------------------------------------------------------ outputs


def test_public_names():
    for name in heads.MODEL_CLASSES:
        assert getattr(minidistil, name) is heads.MODEL_CLASSES[name]
    assert minidistil.ModelOutput is ModelOutput


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_output_fields(cls):
    model = make(cls)
    out = call(model, output_hidden_states=True, output_attentions=True)
    shapes = {
        "DistilBertModel": {"last_hidden_state": (2, 5, 8)},
        "DistilBertForMaskedLM": {"logits": (2, 5, 50)},
        "DistilBertForSequenceClassification": {"logits": (2, 3)},
        "DistilBertForMultipleChoice": {"logits": (1, 2)},
        "DistilBertForTokenClassification": {"logits": (2, 5, 3)},
        "DistilBertForQuestionAnswering": {"start_logits": (2, 5), "end_logits": (2, 5)},
    }[cls.__name__]
    for name, shape in shapes.items():
        assert isinstance(out[name], np.ndarray) and out[name].dtype == np.float32
        assert getattr(out, name) is out[name] and out[name].shape == shape
    assert isinstance(out.hidden_states, tuple) and len(out.hidden_states) == CONFIG.n_layers + 1
    assert isinstance(out.attentions, tuple) and len(out.attentions) == CONFIG.n_layers
    assert out.attentions[0].shape[1:] == (2, 5, 5)
    assert getattr(out, "loss", None) is None and "loss" not in out
    with pytest.raises(KeyError):
        out["loss"]
    assert out[0] is out.to_tuple()[0]
    plain = call(model)
    assert plain.hidden_states is None and plain.attentions is None
    np.testing.assert_array_equal(main_output(plain), main_output(out))


def test_model_output_behaves_like_the_references():
    out = MaskedLMOutput(logits=np.zeros(2), loss=np.float32(1.0))
    assert list(out) == ["loss", "logits"]  # declaration order, not call order
    assert out.hidden_states is None
    with pytest.raises(AttributeError):
        out.nonsense
    with pytest.raises(TypeError, match="no field"):
        MaskedLMOutput(bogus=1)
    clone = pickle.loads(pickle.dumps(out))
    assert type(clone) is MaskedLMOutput and list(clone) == ["loss", "logits"]
    assert list(copy.deepcopy(out)) == ["loss", "logits"]
    assert "logits=array(2,)" in repr(out)


def test_hidden_states_and_attentions_semantics():
    model = make(heads.DistilBertModel)
    out = call(model, output_hidden_states=True, output_attentions=True)
    np.testing.assert_array_equal(out.hidden_states[-1], out.last_hidden_state)
    for probs in out.attentions:
        np.testing.assert_array_equal(probs[..., 4][0], 0.0)  # padded key of row 0
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)


def test_fully_masked_row_is_uniform_not_nan():
    model = make(heads.DistilBertModel)
    out = model(input_ids=IDS, attention_mask=np.array([[1, 1, 1, 1, 0], [0, 0, 0, 0, 0]]), output_attentions=True)
    assert np.isfinite(out.last_hidden_state).all()
    np.testing.assert_allclose(out.attentions[0][1], 0.2, atol=1e-7)


def test_inputs_embeds_equal_input_ids_through_the_word_embeddings():
    model = make(heads.DistilBertForTokenClassification)
    embeds = model.params["embeddings.word_embeddings.weight"][IDS]
    a = model(input_ids=IDS, attention_mask=MASK)
    b = model(inputs_embeds=embeds, attention_mask=MASK)
    np.testing.assert_array_equal(a.logits, b.logits)


def test_lists_are_accepted():
    model = make(heads.DistilBertModel)
    a = model(input_ids=IDS.tolist(), attention_mask=MASK.tolist())
    np.testing.assert_array_equal(a.last_hidden_state, model(input_ids=IDS, attention_mask=MASK).last_hidden_state)


def test_sinusoidal_positions_are_the_fixed_table():
    config = CONFIG.replace(sinusoidal_pos_embds=True)
    params = random_params(config, 0)
    np.testing.assert_array_equal(params["embeddings.position_embeddings.weight"], sinusoidal_position_embeddings(16, 8))
    del params["embeddings.position_embeddings.weight"]
    model = heads.DistilBertModel(config, params, backend="numpy")
    table = model.params["embeddings.position_embeddings.weight"]
    assert table.dtype == np.float32
    assert table[3, 0] == np.float32(np.sin(3.0)) and table[3, 1] == np.float32(np.cos(3.0))
    assert table[5, 6] == np.float32(np.sin(5.0 / 10000 ** (6 / 8)))


# ------------------------------------------------------------------ losses through the classes


def test_sequence_classification_problem_types():
    model = make(heads.DistilBertForSequenceClassification)
    logits = call(model).logits
    ce = call(model, labels=np.array([2, 0])).loss
    assert float(ce) == pytest.approx(float(minidistil.modeling.losses.cross_entropy(logits, np.array([2, 0]))))
    targets = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
    bce = call(model, labels=targets).loss
    assert float(bce) == pytest.approx(float(minidistil.modeling.losses.bce_with_logits(logits, targets)))
    assert model.config.problem_type is None  # decided per call, the config is left alone
    reg = make(heads.DistilBertForSequenceClassification, CONFIG.replace(num_labels=1))
    out = call(reg, labels=np.array([0.5, -1.0]))
    assert float(out.loss) == pytest.approx(float(((out.logits[:, 0] - [0.5, -1.0]) ** 2).mean()), rel=1e-6)
    explicit = make(heads.DistilBertForSequenceClassification, CONFIG.replace(problem_type="regression"))
    y = np.zeros((2, 3), np.float32)
    out = call(explicit, labels=y)
    assert float(out.loss) == pytest.approx(float((out.logits.astype(float) ** 2).mean()), rel=1e-6)


def test_multiple_choice_and_token_and_mlm_losses():
    mc = make(heads.DistilBertForMultipleChoice)
    out = call(mc, labels=np.array([1]))
    assert float(out.loss) == pytest.approx(float(minidistil.modeling.losses.cross_entropy(out.logits, np.array([1]))))
    tok = make(heads.DistilBertForTokenClassification)
    labels = np.where(MASK == 1, 1, -100)
    out = call(tok, labels=labels)
    assert float(out.loss) == pytest.approx(
        float(minidistil.modeling.losses.cross_entropy(out.logits.reshape(-1, 3), labels.reshape(-1))))
    mlm = make(heads.DistilBertForMaskedLM)
    labels = np.full(IDS.shape, -100)
    labels[0, 1] = 7
    out = call(mlm, labels=labels)
    assert float(out.loss) == pytest.approx(-float(np.log(np.exp(out.logits[0, 1].astype(float))
                                                          / np.exp(out.logits[0, 1].astype(float)).sum())[7]), rel=1e-5)


def test_question_answering_loss_and_config():
    qa = make(heads.DistilBertForQuestionAnswering)
    out = call(qa, start_positions=np.array([1, 99]), end_positions=np.array([3, 2]))
    assert np.isfinite(out.loss)
    with pytest.raises(ValueError, match="both"):
        call(qa, start_positions=np.array([1, 2]))
    with pytest.raises(ConfigError, match="num_labels"):
        heads.DistilBertForQuestionAnswering(CONFIG)  # num_labels 3


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "exactly one of input_ids or inputs_embeds"),
    (dict(input_ids=IDS, inputs_embeds=np.zeros((2, 5, 8), np.float32)), "exactly one"),
    (dict(input_ids=IDS.astype(np.float32)), "integers"),
    (dict(input_ids=IDS[0]), r"shape \(batch, seq_len\)"),
    (dict(input_ids=np.array([[1, 50]])), "outside the vocabulary"),
    (dict(input_ids=np.array([[1, -1]])), "outside the vocabulary"),
    (dict(input_ids=np.ones((1, 17), np.int64)), "longer than max_position_embeddings 16"),
    (dict(input_ids=np.ones((1, 0), np.int64)), "empty"),
    (dict(input_ids=IDS, attention_mask=MASK[:, :4]), "attention_mask has shape"),
    (dict(input_ids=IDS, attention_mask=MASK * 2), "only 0"),
    (dict(input_ids=IDS, head_mask=np.ones(3)), "head_mask must have shape"),
    (dict(input_ids=IDS, head_mask=np.ones((3, 2))), "head_mask must have shape"),
    (dict(input_ids=[[1, 2, 3], [4, 5]]), "rows of input_ids must have equal length; pad them"),
    (dict(input_ids=IDS, attention_mask=[[1] * 5, [1] * 4]), "rows of attention_mask must have equal length"),
    (dict(input_ids=IDS, head_mask=[1.0, np.nan]), "head_mask must hold finite numbers"),
    (dict(input_ids=IDS, head_mask=np.full((2, 2), np.inf)), "head_mask must hold finite numbers"),
    (dict(inputs_embeds=np.zeros((2, 5, 7), np.float32)), "inputs_embeds must have shape"),
    (dict(inputs_embeds=np.zeros((2, 5, 8), np.int64)), "floating point"),
])
def test_bad_inputs_are_clear_value_errors(kwargs, match):
    model = make(heads.DistilBertModel)
    with pytest.raises(ValueError, match=match):
        model(**kwargs)


def test_bad_inputs_of_the_heads():
    with pytest.raises(ValueError, match=r"\(batch, num_choices, seq_len\)"):
        make(heads.DistilBertForMultipleChoice)(input_ids=IDS)
    with pytest.raises(ValueError, match="attention_mask has shape"):
        make(heads.DistilBertForMultipleChoice)(input_ids=IDS[None], attention_mask=MASK)
    with pytest.raises(ValueError, match="integer class ids"):
        make(heads.DistilBertForTokenClassification)(input_ids=IDS, labels=np.zeros(IDS.shape, np.float32))
    with pytest.raises(ValueError, match="labels must have shape"):
        make(heads.DistilBertForMaskedLM)(input_ids=IDS, labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="outside"):
        make(heads.DistilBertForSequenceClassification)(input_ids=IDS, labels=np.array([0, 3]))
    with pytest.raises(ValueError, match="multi-label targets must have shape"):
        make(heads.DistilBertForSequenceClassification)(input_ids=IDS, labels=np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="rows of labels must have equal length; pad them"):
        make(heads.DistilBertForTokenClassification)(input_ids=IDS, labels=[[0] * 5, [0] * 4])
    with pytest.raises(ValueError, match="rows of attention_mask must have equal length; pad them"):
        make(heads.DistilBertForMultipleChoice)(input_ids=IDS[None], attention_mask=[[[1] * 5, [1] * 4]])
    with pytest.raises(ValueError, match="labels must be numbers .* config.label2id"):  # names, not class ids
        make(heads.DistilBertForSequenceClassification)(input_ids=IDS, labels=["POSITIVE", "NEGATIVE"])
    with pytest.raises(ValueError, match="labels must be numbers .* config.label2id"):
        make(heads.DistilBertForTokenClassification)(input_ids=IDS, labels=np.full(IDS.shape, "O"))


def test_constructor_checks_params():
    params = random_params(CONFIG, 0, "sequence_classification")
    with pytest.raises(CheckpointError, match="missing"):
        heads.DistilBertForSequenceClassification(CONFIG, {k: v for k, v in params.items() if k != "classifier.bias"})
    with pytest.raises(CheckpointError, match="wrong shape"):
        heads.DistilBertForSequenceClassification(CONFIG.replace(num_labels=4), params)
    with pytest.raises(TypeError, match="DistilBertConfig"):
        heads.DistilBertModel({"dim": 8})


# ------------------------------------------------------------------ loading and saving


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_save_and_load_round_trip(cls, tmp_path):
    model = make(cls, seed=3)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == [cls.__name__]
    header, _, _ = read_header(tmp_path / "model.safetensors")
    names = set(header)
    if cls is heads.DistilBertModel:
        assert "embeddings.word_embeddings.weight" in names and not any(n.startswith("distilbert.") for n in names)
    else:
        assert "distilbert.embeddings.word_embeddings.weight" in names
        assert not any(n.startswith(("embeddings.", "transformer.")) for n in names)
    assert "vocab_projector.weight" not in names  # tied: left out, as the reference saves it
    loaded = cls.from_pretrained(tmp_path, backend="numpy")
    np.testing.assert_array_equal(main_output(call(loaded)), main_output(call(model)))


def _save(tmp_path, cls, config=CONFIG, seed=0, extra=None, drop=()):
    if cls is heads.DistilBertForQuestionAnswering:
        config = config.replace(num_labels=2)
    params = random_params(config, seed, cls.head, std=0.2, perturb=True)
    params.update(extra or {})
    for name in drop:
        del params[name]
    save_checkpoint(tmp_path, config.replace(architectures=[cls.__name__]), params, prefix_encoder=cls.head is not None)
    return params


def test_missing_head_is_an_error_unless_fresh_head(tmp_path):
    _save(tmp_path, heads.DistilBertModel)
    with pytest.raises(CheckpointError, match="no sequence classification head.*fresh_head=True"):
        heads.DistilBertForSequenceClassification.from_pretrained(tmp_path)
    a = heads.DistilBertForSequenceClassification.from_pretrained(tmp_path, backend="numpy", fresh_head=True, seed=5)
    b = heads.DistilBertForSequenceClassification.from_pretrained(tmp_path, backend="numpy", fresh_head=True, seed=5)
    c = heads.DistilBertForSequenceClassification.from_pretrained(tmp_path, backend="numpy", fresh_head=True, seed=6)
    np.testing.assert_array_equal(a.params["classifier.weight"], b.params["classifier.weight"])
    assert not np.array_equal(a.params["classifier.weight"], c.params["classifier.weight"])
    assert not a.params["classifier.bias"].any()  # the reference's init: zero biases
    bare = heads.DistilBertModel.from_pretrained(tmp_path, backend="numpy")
    np.testing.assert_array_equal(a.params["embeddings.word_embeddings.weight"],
                                  bare.params["embeddings.word_embeddings.weight"])


def test_partial_head_is_an_error(tmp_path):
    _save(tmp_path, heads.DistilBertForSequenceClassification, drop=["classifier.bias"])
    with pytest.raises(CheckpointError, match="classifier.bias"):
        heads.DistilBertForSequenceClassification.from_pretrained(tmp_path)


def test_other_heads_are_dropped_with_a_warning(tmp_path):
    _save(tmp_path, heads.DistilBertForQuestionAnswering)
    with pytest.warns(UserWarning, match="qa_outputs"):
        model = heads.DistilBertModel.from_pretrained(tmp_path, backend="numpy")
    assert "qa_outputs.weight" not in model.params
    with warnings.catch_warnings(record=True) as seen, pytest.raises(MissingHeadError, match="no masked lm head"):
        warnings.simplefilter("always")
        heads.DistilBertForMaskedLM.from_pretrained(tmp_path)
    assert not [w for w in seen if "qa_outputs" in str(w.message)]  # a load that fails says only why


def test_a_fresh_head_warns_that_it_is_untrained(tmp_path):
    _save(tmp_path, heads.DistilBertModel)
    with pytest.warns(UserWarning, match="starts from random weights .*untrained"):
        heads.DistilBertForTokenClassification.from_pretrained(tmp_path, backend="numpy", fresh_head=True)


def test_unknown_tensors_are_an_error(tmp_path):
    _save(tmp_path, heads.DistilBertModel, extra={"pooler.dense.weight": np.zeros((8, 8), np.float32)})
    with pytest.raises(CheckpointError, match="pooler.dense.weight"):
        heads.DistilBertModel.from_pretrained(tmp_path)


def test_fresh_head_replaces_a_head_that_does_not_fit(tmp_path):
    _save(tmp_path, heads.DistilBertForSequenceClassification)
    with pytest.raises(CheckpointError, match="wrong shape"):
        heads.DistilBertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    with pytest.warns(UserWarning, match="replacing"):
        model = heads.DistilBertForSequenceClassification.from_pretrained(
            tmp_path, backend="numpy", fresh_head=True, num_labels=5)
    assert model.config.num_labels == 5 and call(model).logits.shape == (2, 5)


def test_fresh_head_keeps_a_head_that_fits(tmp_path):
    params = _save(tmp_path, heads.DistilBertForTokenClassification)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = heads.DistilBertForTokenClassification.from_pretrained(tmp_path, backend="numpy", fresh_head=True)
    np.testing.assert_array_equal(model.params["classifier.weight"], params["classifier.weight"])


def test_mlm_projector_is_tied_even_when_the_file_has_another(tmp_path):
    other = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    _save(tmp_path, heads.DistilBertForMaskedLM)
    stored = dict(read_safetensors(tmp_path / "model.safetensors"))  # save_checkpoint never writes a tied copy:
    write_safetensors(tmp_path / "model.safetensors", {**stored, "vocab_projector.weight": other})  # plant one
    model = heads.DistilBertForMaskedLM.from_pretrained(tmp_path, backend="numpy")
    # transformers 4.57 ties the projector to the word embeddings after loading: the stored copy is unused
    assert "vocab_projector.weight" not in model.params
    tied = heads.DistilBertForMaskedLM.from_pretrained(tmp_path, backend="numpy")
    x = call(tied).logits
    del tied
    (tmp_path / "model.safetensors").unlink()
    _save(tmp_path, heads.DistilBertForMaskedLM)  # the same weights without the stray copy
    np.testing.assert_array_equal(call(heads.DistilBertForMaskedLM.from_pretrained(tmp_path, backend="numpy")).logits, x)


def test_untied_mlm_uses_its_own_projector(tmp_path):
    config = CONFIG.replace(tie_word_embeddings=False)
    params = _save(tmp_path, heads.DistilBertForMaskedLM, config=config)
    assert "vocab_projector.weight" in params
    model = heads.DistilBertForMaskedLM.from_pretrained(tmp_path, backend="numpy")
    np.testing.assert_array_equal(model.params["vocab_projector.weight"], params["vocab_projector.weight"])
    model.save_pretrained(tmp_path / "again")
    assert "vocab_projector.weight" in read_header(tmp_path / "again" / "model.safetensors")[0]


def test_config_overrides_and_backend_env(tmp_path, monkeypatch):
    _save(tmp_path, heads.DistilBertModel)
    monkeypatch.setenv("MINIDISTIL_BACKEND", "numpy")
    model = heads.DistilBertModel.from_pretrained(tmp_path, problem_type="regression")
    assert model.ops.name == "numpy" and model.config.problem_type == "regression"


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(minidistil.ModelSourceError, match="nothing"):
        heads.DistilBertModel.from_pretrained(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="no weights file"):
        heads.DistilBertModel.from_pretrained(tmp_path)


def test_unknown_keywords_are_rejected(tmp_path):
    _save(tmp_path, heads.DistilBertModel)
    with pytest.raises(TypeError, match="num_label"):
        heads.DistilBertModel.from_pretrained(tmp_path, num_label=3)
    assert heads.DistilBertModel.from_pretrained(tmp_path, backend="numpy", hidden_size=8).config.dim == 8


# ------------------------------------------------------------------ hooks


class Recorder:
    def __init__(self):
        self.projects, self.residuals = [], []

    def project(self, layer, name, x, y):
        self.projects.append((layer, name, x.shape, y.shape))
        return y

    def residual(self, layer, name, hidden, residual, norm):
        self.residuals.append((layer, name))
        return norm(hidden, residual)


def test_identity_hooks_change_nothing_and_see_every_site():
    model = make(heads.DistilBertForMaskedLM)
    hooks = Recorder()
    plain = call(model)
    hooked = call(model, hooks=hooks)
    np.testing.assert_allclose(hooked.logits, plain.logits, atol=1e-6)
    names = ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"]
    assert [(l, n) for l, n, _, _ in hooks.projects] == [(l, n) for l in range(2) for n in names]
    assert hooks.residuals == [(l, n) for l in range(2) for n in ("sa_layer_norm", "output_layer_norm")]
    lin1 = [p for p in hooks.projects if p[1] == "lin1"][0]
    assert lin1[2] == (2, 5, 8) and lin1[3] == (2, 5, 12)


def test_a_hook_changes_the_output():
    model = make(heads.DistilBertModel)

    class Zero:
        def project(self, layer, name, x, y):
            return y * 0 if (layer, name) == (1, "lin2") else y

    a = call(model).last_hidden_state
    b = call(model, hooks=Zero()).last_hidden_state
    assert np.abs(a - b).max() > 1e-3


class _DeviceArray(np.ndarray):
    """Stands in for a CuPy array: a distinct array type that only to_numpy turns back into NumPy."""


class _DeviceOps(NumpyOps):
    """The reference ops, with results marked as living on a device, like the cupy backend."""

    keeps_outputs_on_device = True

    def linear(self, x, weight, bias=None, activation=None):
        return super().linear(x, weight, bias, activation).view(_DeviceArray)

    def layernorm(self, x, gamma, beta, eps, residual=None):
        return super().layernorm(x, gamma, beta, eps, residual).view(_DeviceArray)

    def to_numpy(self, x):
        return np.asarray(x).view(np.ndarray)


@pytest.mark.parametrize("cls", list(heads.MODEL_CLASSES.values()))
def test_device_backends_keep_outputs_on_the_device_unless_asked(cls):
    model = make(cls)
    model.runner.ops = _DeviceOps()
    kept = main_output(call(model, output_hidden_states=True))
    fetched = main_output(call(model, output_hidden_states=True, return_numpy=True))
    assert isinstance(kept, _DeviceArray)
    assert type(fetched) is np.ndarray and fetched.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(kept), fetched)


@pytest.mark.parametrize("cls", list(heads.MODEL_CLASSES.values()))
def test_return_dict_false_gives_the_reference_tuple(cls):
    model = make(cls)
    targets = {"start_positions": [1, 2], "end_positions": [2, 3]} if cls.targets == ("start_positions", "end_positions") else {}
    if cls.targets == ("labels",):
        targets = {"labels": call(model).to_tuple()[0].argmax(-1)}  # any valid labels of the right shape
    out = call(model, output_hidden_states=True, **targets)
    as_tuple = call(model, output_hidden_states=True, return_dict=False, **targets)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(out)
    for got, field in zip(as_tuple, out):  # loss first (when given), then the head's fields, then hidden_states
        expected = out[field]
        if isinstance(expected, tuple):
            assert all(np.array_equal(a, b) for a, b in zip(got, expected))
        else:
            np.testing.assert_array_equal(got, expected)
    assert list(out)[-1] == "hidden_states" and (not targets or list(out)[0] == "loss")
    assert isinstance(call(model, return_dict=True), cls.output_class)


def test_unknown_targets_are_a_type_error():
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) labels \(it takes no targets\)"):
        call(make(heads.DistilBertModel), labels=[0, 1])
    with pytest.raises(TypeError, match="it takes start_positions, end_positions"):
        call(make(heads.DistilBertForQuestionAnswering), labels=[0, 1])
