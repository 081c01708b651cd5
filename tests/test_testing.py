"""minidistil.testing: each check catches a deliberately broken callable, passes on minidistil,
and reports (inside hypothesis) the property, the shrunk input and the largest difference."""

import subprocess
import sys
import unicodedata

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="minidistil.testing's strategies need hypothesis (extra 'testing')")
from hypothesis import HealthCheck, Phase, find, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from minidistil import DistilBertConfig, TokenizerError  # noqa: E402
from minidistil.testing import checks, strategies  # noqa: E402
from minidistil.testing.checks import InvariantViolation  # noqa: E402
from minidistil.tokenization import DistilBertTokenizerFast  # noqa: E402

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent

VOCAB = ROOT / "tests" / "data" / "bert-base-uncased-vocab.txt"

# Inner @given runs: deterministic, no example database, quick (no explain phase).
INNER = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                 suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
# Reachability: the first example that satisfies the predicate will do (no shrinking).
FIND = settings(max_examples=400, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck), phases=[Phase.generate])
SHRINK = settings(FIND, phases=[Phase.generate, Phase.shrink])


@pytest.fixture(scope="module")
def config():
    return DistilBertConfig(vocab_size=40, dim=12, n_heads=3, n_layers=2, hidden_dim=24, max_position_embeddings=24,
                            activation="gelu")


@pytest.fixture(scope="module")
def checkpoint(config, tmp_path_factory):
    return strategies.write_checkpoint(config, seed=7, directory=tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="module")
def model(checkpoint):
    return checks.model_callable(checkpoint)


def right_padded():
    ids = np.array([[5, 9, 3, 7, 2], [4, 8, 6, 0, 0], [0, 0, 0, 0, 0]])
    return ids, (np.arange(5) < np.array([[5], [3], [0]])).astype(np.int64)


def left_padded():
    ids = np.array([[0, 0, 11, 12, 13], [21, 22, 23, 24, 25], [0, 0, 0, 0, 31]])
    return ids, (ids != 0).astype(np.int64)


BATCHES = {"right": right_padded, "left": left_padded}


# ------------------------------------------------------------------ broken deployments


def leaks_padding(model):
    """Ignores the attention mask: real tokens attend to padding."""
    return lambda ids, mask: model(ids, np.ones_like(mask))


def mixes_rows(model):
    """Adds a little of the batch mean to every row (batch statistics leaking across rows)."""
    def f(ids, mask):
        out = model(ids, mask)
        return out + 0.05 * out.mean(axis=0, keepdims=True)
    return f


def forgets_to_unsort(model):
    """A bucketing server: sorts rows by length for speed and returns them in sorted order."""
    def f(ids, mask):
        order = np.argsort(-mask.sum(axis=1), kind="stable")
        return model(ids[order], mask[order])
    return f


def off_by(model, delta=1e-3):
    return lambda ids, mask: model(ids, mask) + np.float32(delta)


def noisy(model):
    rng = np.random.default_rng(0)
    return lambda ids, mask: model(ids, mask) + rng.normal(0, 1e-6, size=1).astype(np.float32)


def mutates_mask(model):
    def f(ids, mask):
        out = model(ids, mask)
        mask[...] = 1  # "normalises" the caller's mask in place
        return out
    return f


# ------------------------------------------------------------------ checks pass on minidistil


@pytest.mark.parametrize("side", BATCHES)
def test_every_check_passes_on_minidistil(model, checkpoint, side):
    ids, mask = BATCHES[side]()
    checks.assert_padding_invariant(model, ids, mask)
    checks.assert_batch_invariant(model, ids, mask)
    checks.assert_batch_invariant(model, ids, mask, positions="all")
    checks.assert_deterministic(model, ids, mask)
    checks.assert_matches_reference(model, ids, mask, checkpoint)
    checks.assert_matches_reference(model.model, ids, mask, model.model, atol=0, rtol=0)
    checks.assert_matches_reference(off_by(model, 1e-6), ids, mask, model)  # within the default tolerance


def test_checks_accept_model_outputs_and_onnx_style_lists(model, checkpoint):
    ids, mask = right_padded()
    as_list = lambda i, m: [model(i, m)]  # noqa: E731  (onnxruntime's session.run returns a list)
    checks.assert_matches_reference(as_list, ids, mask, checkpoint)
    checks.assert_matches_reference(model.model, ids, mask, checkpoint)  # a minidistil model returns a ModelOutput


@pytest.mark.parametrize("head", ["sequence_classification", "multiple_choice", "token_classification",
                                  "question_answering", "masked_lm"])
def test_checks_pass_on_every_head(config, tmp_path, head):
    path = strategies.write_checkpoint(config, seed=3, head=head, directory=tmp_path)
    f = checks.model_callable(path)
    for side in BATCHES:
        ids, mask = BATCHES[side]()
        checks.assert_padding_invariant(f, ids, mask)
        checks.assert_batch_invariant(f, ids, mask)
        checks.assert_deterministic(f, ids, mask)
        checks.assert_matches_reference(f, ids, mask, path)


# ------------------------------------------------------------------ each check catches its bug


@pytest.mark.parametrize("side", BATCHES)
def test_padding_check_catches_a_mask_leak(model, side):
    ids, mask = BATCHES[side]()
    with pytest.raises(InvariantViolation) as info:
        checks.assert_padding_invariant(leaks_padding(model), ids, mask)
    error = info.value
    assert error.property == "padding invariance"
    assert error.max_diff > 1e-3
    assert mask[error.index[0], error.index[1]] == 1  # the difference is at a real position
    text = str(error)
    assert text.startswith("padding invariance violated: outputs changed when")
    assert "largest difference" in text and "input_ids = [[" in text and "attention_mask = [[" in text
    assert f"padding side: {side}" in text


def test_padding_check_catches_a_leak_without_padding_in_the_input(model):
    ids = np.array([[3, 4, 5]])
    with pytest.raises(InvariantViolation, match="padding column"):
        checks.assert_padding_invariant(leaks_padding(model), ids, np.ones_like(ids))


@pytest.mark.parametrize("broken", [mixes_rows, forgets_to_unsort])
def test_batch_check_catches_row_mixing(model, broken):
    ids, mask = right_padded()
    with pytest.raises(InvariantViolation) as info:
        checks.assert_batch_invariant(broken(model), ids, mask)
    assert info.value.property == "batch invariance"
    assert "rows are not independent" in str(info.value) or "permuting the rows" in str(info.value)
    checks.assert_padding_invariant(broken(model), ids[:1], mask[:1])  # one row: nothing to mix


def test_reference_check_catches_an_offset_of_1e_3(model, checkpoint):
    ids, mask = left_padded()
    with pytest.raises(InvariantViolation) as info:
        checks.assert_matches_reference(off_by(model, 1e-3), ids, mask, checkpoint)
    error = info.value
    assert error.property == "agreement with the reference"
    assert error.max_diff == pytest.approx(1e-3, rel=1e-3)
    assert error.actual - error.expected == pytest.approx(1e-3, rel=1e-2)
    assert "largest difference 0.001" in str(error) and "(atol=0.0001)" in str(error)  # rtol 0: not shown
    # every checked value is off, and padded positions are not among the compared ones
    assert f"{int(mask.sum()) * 12} of {int(mask.sum()) * 12} compared values" in str(error)


def test_determinism_check_catches_noise_and_input_mutation(model):
    ids, mask = right_padded()
    with pytest.raises(InvariantViolation, match="call 2 on the same input gave a different output"):
        checks.assert_deterministic(noisy(model), ids, mask)
    with pytest.raises(InvariantViolation, match="modified its attention_mask argument in place") as info:
        checks.assert_deterministic(mutates_mask(model), ids, mask.copy())
    assert "attention_mask after the call" in str(info.value)


def test_violation_is_an_assertion_error():
    assert issubclass(InvariantViolation, AssertionError)


def test_misuse_is_a_value_error_not_a_violation(model):
    with pytest.raises(ValueError, match="attention_mask must hold only 0"):
        checks.assert_deterministic(model, np.array([[1, 2]]), np.array([[1, 2]]))
    with pytest.raises(ValueError, match="shape"):
        checks.assert_deterministic(model, np.array([1, 2]), np.array([1, 1]))


# ------------------------------------------------------------------ tokenizer agreement


@pytest.fixture(scope="module")
def tokenizer():
    return DistilBertTokenizerFast(vocab_file=str(VOCAB))


class StripsAccents:
    """A rewritten tokenizer that strips accents although its reference keeps them."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, text, *args, **kwargs):
        strip = lambda t: "".join(c for c in unicodedata.normalize("NFD", t) if unicodedata.category(c) != "Mn")  # noqa: E731
        text = strip(text) if isinstance(text, str) else [strip(t) for t in text]
        return self.inner(text, *args, **kwargs)


class DropsAccentedLetters(StripsAccents):
    """The classic text.encode('ascii', 'ignore'): 'café' becomes 'caf'."""

    def __call__(self, text, *args, **kwargs):
        drop = lambda t: t.encode("ascii", "ignore").decode()  # noqa: E731
        text = drop(text) if isinstance(text, str) else [drop(t) for t in text]
        return self.inner(text, *args, **kwargs)


def test_encoding_check_passes_on_the_same_tokenizer(tokenizer):
    other = type(tokenizer)(vocab_file=str(VOCAB))
    checks.assert_same_encoding(other, tokenizer, "Héllo [MASK] wörld", "ça va?", truncation=True, max_length=6,
                                padding="max_length", return_offsets_mapping=True)
    checks.assert_same_encoding(StripsAccents(tokenizer), tokenizer, "café")  # this reference strips accents too


def test_encoding_check_catches_a_tokenizer_that_drops_accents(tokenizer):
    keeps = type(tokenizer)(vocab_file=str(VOCAB), strip_accents=False)
    with pytest.raises(InvariantViolation) as info:
        checks.assert_same_encoding(StripsAccents(keeps), keeps, "Crème brûlée")
    text = str(info.value)
    assert text.startswith("tokenizer agreement violated: input_ids differ")
    assert "first difference at index [1]" in text and "reference tokens = ['[CLS]', '[UNK]'" in text
    assert "(escaped: 'Cr\\xe8me br\\xfbl\\xe9e')" in text

    with pytest.raises(InvariantViolation, match="input_ids differ") as info:
        checks.assert_same_encoding(DropsAccentedLetters(tokenizer), tokenizer, ["naïve", "plain"], padding=True)
    assert info.value.index == (0, 1)


def test_encoding_check_reports_one_sided_errors(tokenizer):
    def refuses(*args, **kwargs):
        raise ValueError("no pairs here")

    with pytest.raises(InvariantViolation, match="the tokenizer raised ValueError: no pairs here"):
        checks.assert_same_encoding(refuses, tokenizer, "a", "b")
    checks.assert_same_encoding(refuses, refuses, "a")  # both refuse: they agree


def test_hypothesis_finds_and_shrinks_the_accent_bug(tokenizer):
    keeps = type(tokenizer)(vocab_file=str(VOCAB), strip_accents=False)

    @INNER
    @given(strategies.encodings(keeps))
    def inner(case):
        checks.assert_same_encoding(StripsAccents(keeps), keeps, case)

    with pytest.raises(InvariantViolation) as info:
        inner()
    error = info.value
    assert error.property == "tokenizer agreement"
    shrunk = error.inputs["text"]
    assert isinstance(shrunk, str) and len(shrunk.split()) == 1, shrunk  # shrunk to one word with an accent
    assert any(unicodedata.category(c) == "Mn" for c in unicodedata.normalize("NFD", shrunk))
    assert any(("Falsifying example" in n or "Failing test case" in n) for n in getattr(error, "__notes__", []))


# ------------------------------------------------------------------ inside hypothesis: shrunk, informative


@pytest.mark.parametrize("broken, prop, check", [
    (leaks_padding, "padding invariance", checks.assert_padding_invariant),
    (mixes_rows, "batch invariance", checks.assert_batch_invariant),
    (forgets_to_unsort, "batch invariance", checks.assert_batch_invariant),
    (noisy, "determinism", checks.assert_deterministic),
])
def test_hypothesis_reports_the_shrunk_input(model, broken, prop, check):
    f = broken(model)

    @INNER
    @given(strategies.token_batches(model.config, max_batch=4, max_len=8))
    def inner(batch):
        check(f, *batch)

    with pytest.raises(InvariantViolation) as info:
        inner()
    error = info.value
    assert error.property == prop
    ids = error.inputs["input_ids"]
    assert ids.shape[0] <= 2 and ids.shape[1] <= 2, ids  # shrunk: at most two rows of two tokens
    text = str(error)
    assert text.startswith(f"{prop} violated")
    assert "largest difference" in text and "input_ids = [[" in text
    notes = "\n".join(getattr(error, "__notes__", []))
    assert ("Falsifying example" in notes or "Failing test case" in notes) and "TokenBatch(input_ids=array(" in notes


def test_hypothesis_reports_the_offset_with_its_size(model, checkpoint):
    f = off_by(model, 1e-3)

    @INNER
    @given(strategies.token_batches(model.config))
    def inner(batch):
        checks.assert_matches_reference(f, *batch, checkpoint)

    with pytest.raises(InvariantViolation, match=r"largest difference 0\.001") as info:
        inner()
    assert info.value.inputs["input_ids"].shape == (1, 1)  # the simplest batch already shows it


# ------------------------------------------------------------------ strategies


def _categories(text):
    return {unicodedata.category(c) for c in text}


@pytest.mark.parametrize("name, predicate", [
    ("combining mark", lambda t: "Mn" in _categories(t)),
    ("emoji ZWJ sequence", lambda t: "\u200d" in t),
    ("control character", lambda t: any(c in t for c in "\x00\x01\x07\x1b\x7f")),
    ("format character", lambda t: "Cf" in _categories(t)),
    ("word longer than 100 characters", lambda t: any(len(w) > 100 for w in t.split())),
    ("[MASK] inside text", lambda t: "[MASK]" in t and t.strip() != "[MASK]"),
    ("CJK ideograph", lambda t: any(0x4E00 <= ord(c) <= 0x9FFF or 0x20000 <= ord(c) <= 0x2FFFF for c in t)),
    ("right-to-left script", lambda t: any(unicodedata.bidirectional(c) in ("R", "AL") for c in t)),
])
def test_texts_reach_adversarial_cases(name, predicate):
    assert predicate(find(strategies.texts(), predicate, settings=FIND))


@INNER
@given(strategies.texts())
def test_texts_are_valid_unicode(text):
    assert isinstance(text, str)
    text.encode("utf-8")  # no lone surrogates


@INNER
@given(st.data())
def test_token_batches_are_valid(data):
    config = data.draw(strategies.configs())
    ids, mask = data.draw(strategies.token_batches(config))
    assert ids.ndim == 2 and ids.shape == mask.shape and ids.dtype == np.int64
    assert 1 <= ids.shape[1] <= min(16, config.max_position_embeddings)
    assert ((0 <= ids) & (ids < config.vocab_size)).all()
    assert set(np.unique(mask)) <= {0, 1}
    assert (ids[mask == 0] == config.pad_token_id).all()
    lengths = mask.sum(axis=1)
    right = all(mask[i, :n].all() for i, n in enumerate(lengths))
    left = all(mask[i, ids.shape[1] - n:].all() for i, n in enumerate(lengths))
    assert right or left


@pytest.mark.parametrize("name, predicate", [
    ("length 1", lambda b: b.input_ids.shape[1] == 1),
    ("a fully padded row", lambda b: (b.attention_mask.sum(axis=1) == 0).any() and len(b.input_ids) > 1),
    ("right padding", lambda b: b.attention_mask[0, 0] == 1 and b.attention_mask[0, -1] == 0),
    ("left padding", lambda b: b.attention_mask[0, 0] == 0 and b.attention_mask[0, -1] == 1),
    ("several rows", lambda b: len(b.input_ids) >= 3),
])
def test_token_batches_reach_edge_cases(config, name, predicate):
    find(strategies.token_batches(config), predicate, settings=FIND)


def test_token_batches_shrink_to_one_unpadded_token(config):
    batch = find(strategies.token_batches(config), lambda b: True, settings=SHRINK)
    assert batch.input_ids.tolist() == [[0]] and batch.attention_mask.tolist() == [[1]]


@pytest.mark.parametrize("activation", strategies.ACTIVATIONS)
def test_configs_reach_every_activation(activation):
    config = find(strategies.configs(), lambda c: c.activation == activation, settings=FIND)
    assert isinstance(config, DistilBertConfig)


@pytest.mark.parametrize("sinusoidal", [False, True])
def test_configs_reach_both_position_embeddings(sinusoidal):
    find(strategies.configs(), lambda c: c.sinusoidal_pos_embds == sinusoidal and c.n_layers > 1, settings=FIND)


def test_configs_fix_fields():
    config = find(strategies.configs(n_layers=3, activation="relu"), lambda c: True, settings=FIND)
    assert (config.n_layers, config.activation) == (3, "relu")


def test_checkpoints_load_and_are_reused(config, tmp_path):
    from minidistil import DistilBertForQuestionAnswering, DistilBertForSequenceClassification, DistilBertModel

    path = find(strategies.checkpoints(config, seeds=st.just(0)), lambda p: True, settings=FIND)
    assert path.name.startswith("encoder-L2-H3-D12-F24-V40-P24-gelu-learned-seed0-")
    assert DistilBertModel.from_pretrained(path, backend="numpy").config.dim == 12
    again = strategies.write_checkpoint(config, seed=0)
    assert again == path
    cls_path = strategies.write_checkpoint(config, seed=1, head="sequence_classification", directory=tmp_path)
    model = DistilBertForSequenceClassification.from_pretrained(cls_path, backend="numpy")
    assert model.config.architectures == ["DistilBertForSequenceClassification"]
    qa = find(strategies.checkpoints(config, head="any"), lambda p: p.name.startswith("question"), settings=FIND)
    assert DistilBertForQuestionAnswering.from_pretrained(qa, backend="numpy").config.num_labels == 2


@INNER
@given(strategies.encodings())
def test_encodings_draw_consistent_options(case):
    kwargs = case.kwargs
    if kwargs.get("truncation") in ("only_first", "only_second"):
        assert case.text_pair is not None
    if kwargs.get("padding") == "max_length" or "stride" in kwargs:
        assert kwargs.get("max_length") is not None
    if isinstance(case.text, list) and case.text_pair is not None:
        assert len(case.text) == len(case.text_pair)
    assert case.tokenizer_args()[0] is case.text


def test_encodings_run_on_the_tokenizer(tokenizer):
    outcomes = []

    @INNER
    @given(strategies.encodings(tokenizer))
    def inner(case):
        try:
            encoding = case(tokenizer)
        except TokenizerError:  # e.g. only_second truncation of a pair whose second text is too short
            outcomes.append(False)
            return
        assert "input_ids" in encoding
        outcomes.append(True)

    inner()
    # Refusals are legitimate for some option mixes, but a strategy that mostly draws them tests nothing.
    assert sum(outcomes) >= 0.75 * len(outcomes), f"only {sum(outcomes)} of {len(outcomes)} drawn encodings encoded"


def test_checks_need_no_hypothesis():
    code = (
        "import sys; import minidistil; from minidistil.testing import checks, assert_matches_reference; "
        "assert 'hypothesis' not in sys.modules, 'hypothesis imported by minidistil.testing.checks'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
