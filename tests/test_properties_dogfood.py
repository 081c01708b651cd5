"""minidistil's own property tests, written with minidistil.testing's strategies and checks."""

from pathlib import Path

import pytest

pytest.importorskip("hypothesis", reason="property tests need hypothesis (extra 'testing')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from minidistil import DistilBertModel  # noqa: E402
from minidistil.testing import checks, strategies  # noqa: E402
from minidistil.tokenization import DistilBertTokenizerFast  # noqa: E402

VOCAB = Path(__file__).resolve().parent / "data" / "bert-base-uncased-vocab.txt"
FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@FAST
@given(strategies.checkpoints(head="any"), st.data())
def test_every_model_class_has_the_encoder_invariants(checkpoint, data):
    model = checks.model_callable(checkpoint)  # NumPy reference backend
    batch = data.draw(strategies.token_batches(model.config), label="batch")
    checks.assert_padding_invariant(model, *batch)
    checks.assert_batch_invariant(model, *batch)
    checks.assert_deterministic(model, *batch)


@FAST
@given(checkpoint=strategies.checkpoints(), data=st.data())
def test_numba_backend_matches_the_numpy_reference(checkpoint, data):
    fast = DistilBertModel.from_pretrained(checkpoint, backend="numba")
    batch = data.draw(strategies.token_batches(fast.config), label="batch")
    checks.assert_matches_reference(checks.model_callable(fast), *batch, checkpoint, atol=1e-5)
    checks.assert_batch_invariant(checks.model_callable(fast), *batch)


@pytest.fixture(scope="module")
def tokenizer():
    return DistilBertTokenizerFast(vocab_file=str(VOCAB))


def test_tokenizer_handles_any_text(tokenizer):
    @FAST
    @given(strategies.texts())
    def inner(text):
        encoding = tokenizer(text, return_offsets_mapping=True)
        ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert all(0 <= i < len(tokenizer) for i in ids)
        assert all(0 <= start <= end <= len(text) for start, end in offsets), offsets

    inner()


def test_tokenizer_encodes_each_row_of_a_batch_alone(tokenizer):
    def one_by_one(texts, **kwargs):
        rows = [tokenizer(t, **kwargs) for t in texts]
        return {key: [row[key] for row in rows] for key in rows[0]}

    @FAST
    @given(st.lists(strategies.texts(max_fragments=6), min_size=1, max_size=4))
    def inner(texts):
        checks.assert_same_encoding(one_by_one, tokenizer, texts, return_offsets_mapping=True)

    inner()


def test_tokenizer_matches_transformers(tokenizer):
    transformers = pytest.importorskip("transformers", reason="the reference tokenizer (transformers) is dev-only")
    reference = transformers.DistilBertTokenizerFast(vocab_file=str(VOCAB))
    transformers.logging.set_verbosity_error()

    @settings(FAST, max_examples=100)
    @given(strategies.encodings(tokenizer))
    def inner(case):
        checks.assert_same_encoding(tokenizer, reference, case)

    inner()
