"""Fuzzing what a model file may say (hypothesis): a safetensors header, config.json and the tokenizer
files. Whatever they hold, loading ends in a named error of the right class or in a valid load;
any other exception fails the test.

Examples are derandomized (the same ones every run, so CI is reproducible) and bounded in number,
so the whole file runs in a few seconds.
"""

import json
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from minidistil.checkpoints.loading import load_checkpoint
from minidistil.checkpoints.safetensors_io import STORED_DTYPES, read_safetensors
from minidistil.checkpoints.schema import check_tensors, expected_shapes
from minidistil.errors import CheckpointError, ConfigError, TokenizerError
from minidistil.tokenization import DistilBertTokenizerFast

from hostile_files import TINY_CHECKPOINT

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

NUMBERS = st.one_of(
    st.integers(-3, 40),
    st.sampled_from([2**31, 2**53 + 1, 2**62, 2**63, 2**64, 10**30, -(2**63), 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=6))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=10,
)


def _maybe(value_strategy):
    """Mostly plausible values (5 in 6), sometimes any JSON at all."""
    return st.integers(0, 5).flatmap(lambda roll: JSON if roll == 0 else value_strategy)


# -------------------------------------------------------------------------------- safetensors header
@st.composite
def headers(draw):
    """A consistent header (tensors laid end to end) and its data, then maybe one field made anything."""
    header, offset = {}, 0
    for name in draw(st.lists(st.text(max_size=4), max_size=4, unique=True)):
        dtype = draw(st.sampled_from(sorted(STORED_DTYPES)))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        nbytes = int(np.prod(shape)) * STORED_DTYPES[dtype].itemsize
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if header and draw(st.booleans()):
        entry = header[draw(st.sampled_from(sorted(header)))]
        entry[draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = draw(JSON)
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.one_of(st.just({"format": "pt"}), JSON))
    return header, offset + draw(st.sampled_from([0, 0, -1, 3]))


@FUZZ
@given(drawn=st.one_of(headers(), st.tuples(JSON, st.integers(0, 16))), raw=st.none() | st.binary(max_size=40))
def test_any_safetensors_header_is_a_checkpoint_error_or_a_valid_load(drawn, raw):
    header, data_len = drawn
    blob = raw if raw is not None else json.dumps(header).encode()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(max(data_len, 0)))
        try:
            tensors = read_safetensors(path, float_dtype=None)
        except CheckpointError:
            event("CheckpointError")
            return
    event("valid load")
    # A load is valid only if it is what the header said, tensor by tensor.
    assert isinstance(header, dict) and raw is None
    described = {k: v for k, v in header.items() if k != "__metadata__"}
    assert sorted(tensors) == sorted(described)
    for name, array in tensors.items():
        assert array.shape == tuple(described[name]["shape"])
        begin, end = described[name]["data_offsets"]
        assert array.size * STORED_DTYPES[described[name]["dtype"]].itemsize == end - begin  # BF16 comes back as F32


# ------------------------------------------------------------------------------------- config.json
@pytest.fixture(scope="module")
def checkpoint_dir():
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "model"
        shutil.copytree(TINY_CHECKPOINT, target)
        yield target


TINY_CONFIG = json.loads((TINY_CHECKPOINT / "config.json").read_text())
CONFIG_KEYS = sorted(TINY_CONFIG) + ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                                     "num_labels", "_num_labels", "label2id", "model_type", "extra"]
PLAUSIBLE = st.one_of(st.integers(-2, 40), st.sampled_from([10**6, 10**9, 0.5, "gelu", None, True]),
                      st.dictionaries(st.sampled_from(["0", "1", "2", "x"]), st.sampled_from(["A", "B", 0, 1]), max_size=3))


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(CONFIG_KEYS) | st.text(max_size=5), _maybe(PLAUSIBLE), max_size=4),
       raw=st.none() | st.binary(max_size=60))
def test_any_config_json_is_a_named_error_or_a_valid_load(checkpoint_dir, changes, raw):
    text = raw if raw is not None else json.dumps({**TINY_CONFIG, **changes}).encode()
    (checkpoint_dir / "config.json").write_bytes(text)
    try:
        config, state = load_checkpoint(checkpoint_dir)
        params = check_tensors(state, expected_shapes(config, "masked_lm"), checkpoint_dir)
    except (ConfigError, CheckpointError) as exc:
        event(type(exc).__name__)
        return
    event("valid load")
    # A valid load: the config describes exactly the tensors it returned.
    assert all(params[name].shape == shape for name, shape in expected_shapes(config, "masked_lm").items())
    assert config.num_labels == len(config.id2label) <= 32


# --------------------------------------------------------------------------------------- tokenizer
VOCAB = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "hello": 5, "world": 6, "##s": 7}
TOKENIZER_CONFIG = st.dictionaries(
    st.sampled_from(["do_lower_case", "strip_accents", "tokenize_chinese_chars", "never_split", "model_max_length",
                     "padding_side", "truncation_side", "clean_up_tokenization_spaces", "additional_special_tokens",
                     "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]),
    _maybe(st.one_of(st.booleans(), st.integers(0, 600), st.sampled_from(["left", "right", "[UNK]", "<x>", ""]),
                     st.lists(st.sampled_from(["<x>", "[MASK]", "a"]), max_size=2),
                     st.fixed_dictionaries({"content": st.sampled_from(["[MASK]", "<y>"])}))),
    max_size=4,
)
TOKENIZER_JSON = st.fixed_dictionaries(
    {"model": _maybe(st.fixed_dictionaries(
        {"type": _maybe(st.just("WordPiece")),
         "vocab": _maybe(st.one_of(st.just(VOCAB), st.dictionaries(st.sampled_from(sorted(VOCAB)) | st.text(max_size=3),
                                                                   _maybe(st.integers(-1, 9)), min_size=1, max_size=8)))},
        optional={"unk_token": _maybe(st.sampled_from(["[UNK]", "zz"])),
                  "max_input_chars_per_word": _maybe(st.integers(-1, 200))}))},
    optional={"added_tokens": _maybe(st.lists(st.fixed_dictionaries(
        {"content": _maybe(st.sampled_from(["[PAD]", "<n>", "hello"])), "id": _maybe(st.integers(-1, 12))}), max_size=3))},
)


@FUZZ
@given(config=_maybe(TOKENIZER_CONFIG), tokenizer_json=_maybe(TOKENIZER_JSON), use_vocab_txt=st.booleans(),
       text=st.sampled_from(["hello worlds", "<x> [MASK] zz", ""]))
def test_any_tokenizer_files_are_a_tokenizer_error_or_a_working_tokenizer(config, tokenizer_json, use_vocab_txt, text):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
        if use_vocab_txt:
            (folder / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB))
        else:
            (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json))
        try:
            tokenizer = DistilBertTokenizerFast.from_pretrained(folder)
        except TokenizerError:
            event("TokenizerError")
            return
    event("valid load")
    ids = tokenizer(text, truncation=True, max_length=16)["input_ids"]
    assert all(isinstance(i, int) and 0 <= i < len(tokenizer) for i in ids)
    assert isinstance(tokenizer.decode(ids), str)
    assert all(isinstance(t, str) for t in tokenizer.all_special_tokens)
