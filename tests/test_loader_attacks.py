"""Hostile model files (issue 13, the loaders): each ends in a named MinidistilError, never a raw
exception, a silent wrong answer, or memory far beyond the file's size.

One table per class of input: torch .bin archives and pickles, safetensors headers, config.json,
tokenizer files, adapter configs, modules.json; then non-finite weights and outputs, and the
amplification attacks of tests/hostile_files.py, each loaded in a subprocess under an
address-space limit.
"""

import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minidistil import DistilBertForMaskedLM, MinidistilError, cli
from minidistil.adapters import DistilBertModelWithHeads
from minidistil.checkpoints.loading import load_state_dict
from minidistil.checkpoints.safetensors_io import read_safetensors, write_safetensors
from minidistil.checkpoints.torch_bin import read_torch_bin
from minidistil.errors import AdapterError, CheckpointError, ConfigError, TokenizerError
from minidistil.sentence import read_sentence_config
from minidistil.tokenization import DistilBertTokenizerFast

import hostile_files
from hostile_files import TINY_CHECKPOINT, config_beside_tiny_weights, deflated_repeats, with_deflated_record
from pipeline_models import build_model_dir
from torch_pickles import global_, int_, state, state_of, str_, tensor, tensor_again, tuple_, write_bin

GOLDEN = Path(__file__).parent / "golden"
TINY_BIN = GOLDEN / "checkpoint" / "tiny_mlm_bin" / "pytorch_model.bin"
ADAPTERS = GOLDEN / "adapters"
OD = global_("collections", "OrderedDict") + b")R"  # OrderedDict(), the top of a state dict
P2 = b"\x80\x02"  # protocol 2


# ----------------------------------------------------------------------- .bin: views, not copies
def test_views_of_one_storage_are_views_and_conversions_are_made_once(tmp_path):
    pkl = state_of([("a", tensor(memo=0)), ("t", tensor_again(0, stride=(1, 2))),
                    ("row", tensor_again(0, offset=2, size=(2,), stride=(1,)))])
    loaded = read_torch_bin(write_bin(tmp_path / "f32.bin", pkl))
    assert np.array_equal(loaded["t"], np.arange(4, dtype=np.float32).reshape(2, 2).T)
    assert np.array_equal(loaded["row"], [2, 3])
    assert np.shares_memory(loaded["t"], loaded["a"]) and np.shares_memory(loaded["row"], loaded["a"])
    assert not any(v.flags.writeable for v in loaded.values())  # they share memory: read-only
    pkl = state_of([("a", tensor(memo=0, storage="HalfStorage")), ("t", tensor_again(0, stride=(1, 2)))])
    loaded = read_torch_bin(write_bin(tmp_path / "f16.bin", pkl, {"0": np.arange(4, dtype="<f2").tobytes()}))
    assert loaded["t"].dtype == np.float32 and np.array_equal(loaded["t"], np.arange(4).reshape(2, 2).T)
    assert np.shares_memory(loaded["t"], loaded["a"])  # one float32 copy of the storage, two views of it


def test_a_compressed_storage_is_inflated_once_and_loads_like_a_stored_one(tmp_path):
    loaded = read_torch_bin(write_bin(tmp_path / "d.bin", state(w=tensor(), t=tensor(stride=(1, 2))), compress={"0"}))
    assert np.array_equal(loaded["w"], np.arange(4).reshape(2, 2)) and np.shares_memory(loaded["w"], loaded["t"])
    with zipfile.ZipFile(TINY_BIN) as src, zipfile.ZipFile(tmp_path / "zipped.bin", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():  # what "zip -r" of torch.save's output gives
            dst.writestr(info.filename, src.read(info))
    rezipped, stored = read_torch_bin(tmp_path / "zipped.bin"), read_torch_bin(TINY_BIN)
    assert sorted(rezipped) == sorted(stored) and all(np.array_equal(rezipped[k], stored[k]) for k in stored)


# ----------------------------------------------------------------------------- .bin: the archive
def _edited(path, edit):
    data = bytearray(Path(path).read_bytes())
    edit(data)
    Path(path).write_bytes(bytes(data))
    return path


def _last_central_header(data):
    return data.rindex(b"PK\x01\x02")


def _put(offset_in_header, fmt, value, every=False):
    """An edit that writes `value` into the last central directory header (or every one)."""
    def edit(data):
        headers = [m.start() for m in re.finditer(b"PK\x01\x02", bytes(data))] if every else [_last_central_header(data)]
        for at in headers:
            struct.pack_into(fmt, data, at + offset_in_header, value)
    return edit


def _flip_storage_byte(data):
    data[data.index(np.arange(4, dtype="<f4").tobytes())] ^= 1


def _stored(path):
    return write_bin(path, state(w=tensor()))


def _deflated(path):
    return write_bin(path, state(w=tensor()), compress={"0"})


def _two_pickles(path):
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name; the attack is the duplicate
        for _ in range(2):
            zf.writestr("archive/data.pkl", state())
    return path


def _byteorder_bomb(path):
    stream = deflated_repeats(b" " * (1 << 20), 128)
    return with_deflated_record(write_bin(path, state(w=tensor()), byteorder=stream), "archive/byteorder", stream, 128 << 20)


ARCHIVES = {
    "stored storage with a flipped byte": (lambda p: _edited(_stored(p), _flip_storage_byte), "fails its CRC-32 check"),
    "deflated storage, wrong CRC": (lambda p: _edited(_deflated(p), _put(16, "<I", 12345)), "is corrupt: Bad CRC-32"),
    "deflated storage inflating past its storage": (lambda p: _edited(_deflated(p), _put(24, "<I", 64)),
                                                    "says it inflates to 64 bytes, but its storage holds 16"),
    "stored record past the end": (lambda p: _edited(_stored(p), _put(24, "<I", 1 << 31)), "runs past the end of the file"),
    "encrypted members": (lambda p: _edited(_stored(p), _put(8, "<H", 1, every=True)), "corrupt zip archive: RuntimeError"),
    "unknown compression method": (lambda p: _edited(_stored(p), _put(10, "<H", 99, every=True)),
                                   "compression method is not supported"),
    "local header offset past the end": (lambda p: _edited(_stored(p), _put(42, "<I", 0x7FFFFFF0)), "bad local header"),
    "truncated archive": (lambda p: _edited(_stored(p), lambda d: d.__delitem__(slice(len(d) // 2, None))),
                          "corrupt zip archive: truncated"),
    "two data.pkl": (_two_pickles, "expected one <prefix>/data.pkl"),
    "byteorder record of 128 MiB": (_byteorder_bomb, "record 'archive/byteorder' has 134217728 bytes, more than the 16"),
    "legacy pickle file": (lambda p: (p.write_bytes(b"\x80\x02" + b"N."), p)[1], "legacy (non-zip) torch checkpoint"),
}


@pytest.mark.parametrize("case", ARCHIVES)
def test_corrupt_archives_are_named_errors(tmp_path, case):
    build, message = ARCHIVES[case]
    with pytest.raises(CheckpointError, match=re.escape(message)):
        read_torch_bin(build(tmp_path / "pytorch_model.bin"))


# ------------------------------------------------------------------------------- .bin: the pickle
FLOAT_STORAGE = tuple_(str_("storage"), global_("torch", "FloatStorage"), str_("0"), str_("cpu"), int_(4)) + b"Q"


def _rebuild(size, stride, storage=FLOAT_STORAGE, fn="_rebuild_tensor_v2"):
    """A tensor call with raw pickled size and stride tuples."""
    return global_("torch._utils", fn) + tuple_(storage, int_(0), size, stride, b"\x89", OD) + b"R"


def _entry(value):
    return P2 + OD + str_("w") + value + b"s."


_BIG_LONG = b"\x8a\x09" + b"\xff" * 8 + b"\x01"  # LONG1: 2^65 - 1
PICKLES = {  # name -> (pickle, the error's message, or None for a valid load)
    # BUILD (b) pops a state and applies it to the object below it
    "BUILD on a tensor": (_entry(tensor() + b"}" + str_("size") + int_(9) + b"sb"), "pickle tried to update the state of tensor"),
    "BUILD on a storage": (_entry(_rebuild(tuple_(int_(4)), tuple_(int_(1)), storage=FLOAT_STORAGE + b"N}"
                                           + str_("numel") + int_(10**6) + b"s\x86b")), "update the state of storage '0'"),
    "BUILD on an allowed function": (P2 + global_("torch._utils", "_rebuild_tensor_v2") + b"}" + str_("fn") + str_("x") + b"sb.",
                                     "update the state of torch._utils._rebuild_tensor_v2"),
    "BUILD on a type marker": (P2 + global_("torch", "Tensor") + b"}" + str_("name") + str_("x") + b"sb.", "update the state of torch.Tensor"),
    "BUILD __class__ through slot state": (P2 + OD + b"N}" + str_("__class__") + global_("torch", "Tensor") + b"s\x86b.",
                                           "__class__ must be set to a class"),
    "BUILD of a non-dict state": (P2 + OD + int_(3) + b"b.", "state is not a dictionary"),
    "BUILD on a tuple": (P2 + tuple_(int_(1)) + b"}" + str_("a") + int_(1) + b"sb.", "no attribute '__dict__'"),
    "BUILD of an attribute on the state dict": (P2 + OD + b"}" + str_("x") + int_(1) + b"sb" + str_("w") + tensor() + b"s.", None),
    # the memo, lengths and numbers
    "memo index 2^32": (P2 + b"N" + b"r" + struct.pack("<I", 0xFFFFFFF0) + b".", "stores memo entry 4294967280"),
    "text PUT of 10^14": (P2 + b"Np99999999999999\n.", "stores memo entry 99999999999999"),
    "memo GET of nothing": (P2 + b"h\x05.", "Memo value not found"),
    "BINBYTES8 of 2^40": (b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc.", "expected 1099511627776 bytes"),
    "BINUNICODE8 of 2^62": (b"\x80\x04\x8d" + struct.pack("<Q", 1 << 62) + b"x.", "in a unicodestring8"),
    "FRAME of 2^60": (b"\x80\x04\x95" + struct.pack("<Q", 1 << 60) + b"N.", "pickle data was truncated"),
    "5000-digit decimal size": (_entry(_rebuild(tuple_(b"L" + b"9" * 5000 + b"L\n"), tuple_(int_(1)))), "Exceeds the limit (4300 digits)"),
    "5000-digit binary size": (_entry(_rebuild(tuple_(b"\x8b" + struct.pack("<i", 2100) + b"\x7f" * 2100, int_(0)),
                                                tuple_(int_(1), int_(1)))), "is absurdly large"),
    "1000 dimensions": (_entry(_rebuild(tuple_(*[int_(0)] * 1000), tuple_(*[int_(1)] * 1000))), "shape has 1000 dimensions"),
    "empty tensor of 2^63 elements": (_entry(_rebuild(tuple_(int_(0), b"\x8a\x08" + b"\xff" * 7 + b"\x7f"), tuple_(int_(1), int_(1)))),
                                      "is absurdly large"),
    "stride 2^65 on a dimension of 1": (_entry(_rebuild(tuple_(int_(1), int_(4)), tuple_(_BIG_LONG, int_(1)))), None),
    "negative stride": (_entry(_rebuild(tuple_(int_(2)), tuple_(int_(-1)))), "must be non-negative integers"),
    "stride-0 expansion": (_entry(_rebuild(tuple_(int_(1000), int_(1000)), tuple_(int_(0), int_(0)))), "more than storage '0' holds"),
    # structure
    "empty pickle": (b"", "pickle exhausted before seeing STOP"),
    "truncated pickle": (P2 + OD, "pickle exhausted before seeing STOP"),
    "unknown opcode": (P2 + b"\xff.", "opcode b'\\xff' unknown"),
    "200,000 MARKs": (P2 + b"(" * 200_000 + b".", "unexpected MARK found"),
    "tuple nested 100,000 deep": (P2 + b"(" * 100_000 + b"t" * 100_000 + b".", "expected a state dict"),
    "persistent id nested 100,000 deep": (_entry(b"(" * 100_000 + b")" + b"t" * 100_000 + b"Q"), "unexpected persistent id"),
    "persistent id as text": (_entry(b"P0\n"), "unexpected persistent id '0'"),
    "negative numel": (_entry(tensor(numel=-1)), "malformed storage reference"),
    "storage key not a string": (_entry(_rebuild(tuple_(int_(2)), tuple_(int_(1)), storage=tuple_(
        str_("storage"), global_("torch", "FloatStorage"), int_(0), str_("cpu"), int_(4)) + b"Q")), "malformed storage reference"),
    "one storage, two dtypes": (P2 + OD + str_("a") + tensor() + b"s" + str_("b") + tensor(storage="IntStorage") + b"s.",
                                "storage '0' is declared with two dtypes"),
    "rebuild with 1 argument": (_entry(global_("torch._utils", "_rebuild_tensor_v2") + tuple_(int_(1)) + b"R"), "missing 5 required"),
    "v3 with a storage class as dtype": (_entry(global_("torch._utils", "_rebuild_tensor_v3") + tuple_(
        FLOAT_STORAGE, int_(0), tuple_(int_(4)), tuple_(int_(1)), b"\x89", OD, global_("torch", "FloatStorage")) + b"R"),
        "tensor dtype must be a torch dtype"),
    "from_type_v2 calling OrderedDict": (_entry(global_("torch._tensor", "_rebuild_from_type_v2") + tuple_(
        global_("collections", "OrderedDict"), global_("torch", "Tensor"), tuple_(), OD) + b"R"), "may only call a tensor rebuild"),
    "out-of-band buffer": (b"\x80\x05\x97.", "out-of-band data"),
    "extension registry": (P2 + b"\x82\x01.", "unregistered extension code 1"),
    "INST os.system": (P2 + b"(ios\nsystem\n.", "pickle global os.system is not allowed"),
    "tensor as a key": (P2 + OD + tensor() + tensor() + b"s.", "state dict key tensor of shape (2, 2) is not a string"),
    "a list at the top": (P2 + b"].", "expected a state dict (a dict of tensors), got list"),
    "OrderedDict with 3 arguments": (P2 + global_("collections", "OrderedDict") + tuple_(int_(1), int_(2), int_(3)) + b"R.",
                                     "expected at most 1 argument"),
}


@pytest.mark.parametrize("case", PICKLES)
def test_malformed_pickles_are_named_errors_or_load(tmp_path, case):
    pkl, message = PICKLES[case]
    path = write_bin(tmp_path / "pytorch_model.bin", pkl)
    if message is None:
        loaded = read_torch_bin(path)
        assert list(loaded) == ["w"] and np.array_equal(loaded["w"].reshape(-1), np.arange(4))
        return
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        read_torch_bin(path)
    assert str(info.value).startswith("pytorch_model.bin: ") and len(str(info.value)) < 400


# ------------------------------------------------------------------------------ safetensors header
def _header_file(path, header):
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + np.float32([1]).tobytes())
    return path


def _one(**fields):
    return {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], **fields}}


HEADERS = {
    "dtype as a list": (_one(dtype=["F32"]), "dtype ['F32'] is not supported"),
    "dtype as an object": (_one(dtype={"F32": 1}), "dtype {'F32': 1} is not supported"),
    "no dtype": ({"w": {"shape": [1], "data_offsets": [0, 4]}}, "dtype None is not supported"),
    "shape [0, 2^62]": (_one(shape=[0, 2**62], data_offsets=[0, 0]), "is absurdly large"),
    "shape [10^30]": (_one(shape=[10**30]), "is absurdly large"),
    "40 dimensions": (_one(shape=[1] * 40), "shape has 40 dimensions, more than 32"),
    "shape of floats": (_one(shape=[1.0]), "shape must be a list of non-negative integers, got [1.0]"),
    "shape of booleans": (_one(shape=[True]), "got [True]"),
    "shape as a string": (_one(shape="1"), "got '1'"),
    "100k-deep JSON": (b"[" * 100_000 + b"]" * 100_000, "header: JSON nested deeper than 64 levels"),
    "100k-deep tensor entry": (b'{"w": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper than 64 levels"),
    "5000-digit int": (b'{"w": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}',
                       "not valid JSON: Exceeds the limit (4300 digits)"),
    "4000-digit offset": (b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, ' + b"9" * 4000 + b"]}}",
                          "data_offsets [0, <an integer of about 4001 digits>] run past the data region"),
    "NaN offset": (b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, NaN]}}', "data_offsets must be [begin, end] integers"),
    "Infinity in a shape": (b'{"w": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}', "got [inf]"),
    "metadata as a list": ({"__metadata__": [1], **_one()}, "__metadata__ must be an object"),
    "UTF-16 header": (json.dumps(_one()).encode("utf-16"), "header: not UTF-8"),
    "a NaN weight": (_one(), None),  # the header is fine: the weight is refused by load_state_dict (below)
}


@pytest.mark.parametrize("case", HEADERS)
def test_malformed_safetensors_headers_are_named_errors(tmp_path, case):
    header, message = HEADERS[case]
    path = _header_file(tmp_path / "model.safetensors", header)
    if message is None:
        assert read_safetensors(path)["w"].tolist() == [1.0]
        return
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        read_safetensors(path)
    assert str(info.value).startswith("model.safetensors: ") and len(str(info.value)) < 400


# ------------------------------------------------------------------------------------- config.json
CONFIGS = {  # name -> (fields changed in the tiny checkpoint's config.json, or its raw text; field named)
    "n_layers 10^6": ({"n_layers": 10**6}, "n_layers 1000000 is more than 41, the number of tensors"),
    "n_layers 10^9": ({"n_layers": 10**9}, "n_layers 1000000000 is more than 41"),
    "num_hidden_layers 10^9 (alias)": ({"num_hidden_layers": 10**9, "n_layers": 10**9}, "n_layers 1000000000"),
    "n_layers 100, more than the tensors": ({"n_layers": 100}, "n_layers 100 is more than 41"),
    "num_labels 10^8": ({"num_labels": 10**8}, "num_labels 100000000 is more than 32, the largest dimension"),
    "num_labels 1000": ({"num_labels": 1000}, "num_labels 1000 is more than 32"),
    "id2label of 100,000": ({"id2label": {str(i): "x" for i in range(100_000)}}, "id2label with 100000 labels is more than 32"),
    "label2id of 100,000": ({"label2id": {str(i): i for i in range(100_000)}}, "label2id with 100000 labels is more than 32"),
    "dim 10^7": ({"dim": 10**7}, "dim 10000000 is more than 32"),
    "hidden_size 10^7 (alias)": ({"hidden_size": 10**7, "dim": 10**7}, "dim 10000000"),
    "vocab_size 10^10": ({"vocab_size": 10**10}, "vocab_size 10000000000 is more than 32"),
    "max_position_embeddings 10^6": ({"max_position_embeddings": 10**6}, "max_position_embeddings 1000000 is more than 32"),
    "hidden_dim 10^9": ({"hidden_dim": 10**9}, "hidden_dim 1000000000 is more than 32"),
    "n_heads 10^9": ({"n_heads": 10**9}, "n_heads 1000000000 is more than 32"),
    "BERT num_hidden_layers 10^9": ({"model_type": "bert", "num_hidden_layers": 10**9}, "num_hidden_layers 1000000000 is more than 41"),
    "BERT intermediate_size 10^9": ({"model_type": "bert", "intermediate_size": 10**9}, "intermediate_size 1000000000 is more than 32"),
    "dim as a string": ({"dim": "32"}, "dim must be an integer, got '32'"),
    "dropout NaN": ('"dropout": NaN', "dropout must be a probability in [0, 1], got nan"),
    "nested 100,000 deep": ('"x": ' + "[" * 100_000 + "]" * 100_000, "JSON nested deeper than 64 levels"),
    "nested 65 deep": ('"x": ' + "[" * 65 + "]" * 65, "JSON nested deeper than 64 levels"),
    "5000-digit int": ('"dim": ' + "9" * 5000, "not valid JSON: Exceeds the limit (4300 digits)"),
    "5000-digit id2label key": ({"id2label": {"9" * 5000: "x"}}, "id2label key '99999999"),
    "model_type as a list": ({"model_type": ["bert"]}, "model_type ['bert'] is not supported"),
}


def _config_dir(tmp_path, change):
    if isinstance(change, dict):
        return config_beside_tiny_weights(tmp_path, "model", **change)
    folder = config_beside_tiny_weights(tmp_path, "model")
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[: text.rindex("}")] + ", " + change + "}")
    return folder


@pytest.mark.parametrize("case", CONFIGS)
def test_absurd_or_malformed_configs_are_refused_at_once_naming_the_field(tmp_path, case):
    change, message = CONFIGS[case]
    folder = _config_dir(tmp_path, change)
    tracemalloc.start()
    try:
        with pytest.raises(MinidistilError, match=re.escape(message)) as info:
            DistilBertForMaskedLM.from_pretrained(folder, backend="numpy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(info.value, (ConfigError, CheckpointError)) and "config.json" in str(info.value)
    assert peak < 64 * 2**20, f"refusing {case} took {peak / 2**20:.0f} MiB"  # nothing of the claimed size was built


def test_a_config_alone_is_bounded_too():
    from minidistil import DistilBertConfig

    for fields, message in [({"n_layers": 10**9}, "n_layers 1000000000 is more than 512"),
                            ({"num_labels": 10**8}, "num_labels 100000000 is more than 65536"),
                            ({"id2label": {str(i): "x" for i in range(70_000)}}, "id2label with 70000 labels is more than 65536")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            DistilBertConfig(**fields)
    config = DistilBertConfig()
    with pytest.raises(ConfigError, match="num_labels 100000000 is more than 65536"):
        config.num_labels = 10**8


# ------------------------------------------------------------------------------------ tokenizer files
_VOCAB = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "hello": 5}
_TOKENIZER_JSON = {"version": "1.0", "added_tokens": [{"id": 0, "content": "[PAD]", "special": True}],
                   "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": _VOCAB}}


def _tokenizer_json(**model):
    return {**_TOKENIZER_JSON, "model": {**_TOKENIZER_JSON["model"], **model}}


TOKENIZERS = {  # name -> ({file name: JSON value or raw text}, message; None: a valid load)
    "additional_special_tokens as a string": ({"tokenizer_config.json": {"additional_special_tokens": "abc"}},
                                              "tokenizer_config.json: additional_special_tokens: must be a list of special tokens, got 'abc'"),
    "additional_special_tokens of ints": ({"tokenizer_config.json": {"additional_special_tokens": [1]}},
                                          "a special token must be a string or have a string 'content', got 1"),
    "special token content not a string": ({"special_tokens_map.json": {"additional_special_tokens": [{"content": 5}]}},
                                           "special_tokens_map.json: additional_special_tokens: a special token"),
    "unk_token as a list": ({"tokenizer_config.json": {"unk_token": ["x"]}}, "unk_token: a special token must be a string"),
    "model_max_length as a string": ({"tokenizer_config.json": {"model_max_length": "abc"}}, "model_max_length: must be a non-negative integer"),
    "model_max_length NaN": ({"tokenizer_config.json": '{"model_max_length": NaN}'}, "got nan"),
    "model_max_length Infinity": ({"tokenizer_config.json": '{"model_max_length": Infinity}'}, "got inf"),
    "model_max_length a list": ({"tokenizer_config.json": {"model_max_length": [1]}}, "got [1]"),
    "do_lower_case a string": ({"tokenizer_config.json": {"do_lower_case": "yes"}}, "do_lower_case: must be true or false, got 'yes'"),
    "strip_accents a string": ({"tokenizer_config.json": {"strip_accents": "no"}}, "strip_accents: must be true or false"),
    "padding_side up": ({"tokenizer_config.json": {"padding_side": "up"}}, "padding_side: must be 'right' or 'left'"),
    "never_split a string": ({"tokenizer_config.json": {"never_split": "abc"}}, "never_split: must be a list of strings"),
    "tokenizer_config a list": ({"tokenizer_config.json": [1]}, "tokenizer_config.json: must hold a JSON object, got an array"),
    "special_tokens_map nested 100k deep": ({"special_tokens_map.json": "[" * 100_000 + "]" * 100_000}, "nested deeper than 64"),
    "id past the vocabulary": ({"tokenizer.json": _tokenizer_json(vocab={"[UNK]": 0, "a": 7})},
                               "token 'a' has id 7, outside the vocabulary [0, 3)"),
    "negative id": ({"tokenizer.json": _tokenizer_json(vocab={"[UNK]": 0, "a": -1})}, "token 'a' has id -1"),
    "one id twice": ({"tokenizer.json": _tokenizer_json(vocab={"[UNK]": 0, "a": 0})}, "tokens '[UNK]' and 'a' both have id 0"),
    "id as a float": ({"tokenizer.json": _tokenizer_json(vocab={"[UNK]": 0, "a": 1.0})}, "token 'a' has id 1.0"),
    "id as a list": ({"tokenizer.json": _tokenizer_json(vocab={"[UNK]": 0, "a": [1]})}, "token 'a' has id [1]"),
    "added token id 10^9": ({"tokenizer.json": {**_TOKENIZER_JSON, "added_tokens": [{"id": 10**9, "content": "<n>"}]}},
                            "token '<n>' has id 1000000000, outside the vocabulary [0, 7)"),
    "added_tokens an object": ({"tokenizer.json": {**_TOKENIZER_JSON, "added_tokens": {"a": 1}}}, "added_tokens must be a list"),
    "added token without content": ({"tokenizer.json": {**_TOKENIZER_JSON, "added_tokens": [{"id": 1}]}},
                                    "added_tokens[0] must be an object with a string 'content' and an 'id'"),
    "model a list": ({"tokenizer.json": {**_TOKENIZER_JSON, "model": [1]}}, "model is not a WordPiece model"),
    "tokenizer.json a list": ({"tokenizer.json": [1]}, "tokenizer.json: must hold a JSON object"),
    "unk_token an int": ({"tokenizer.json": _tokenizer_json(unk_token=5)}, "model.unk_token must be a string, got 5"),
    "max_input_chars_per_word -1": ({"tokenizer.json": _tokenizer_json(max_input_chars_per_word=-1)},
                                    "max_input_chars_per_word must be a positive integer, got -1"),
    "tokenizer.json nested 100k deep": ({"tokenizer.json": '{"model": ' + "[" * 100_000 + "]" * 100_000 + "}"}, "nested deeper than 64"),
    "AddedToken dicts and 1e30 (valid)": ({"tokenizer_config.json": '{"model_max_length": 1e30, "mask_token": {"content": "[MASK]"}, '
                                           '"additional_special_tokens": ["<x>", {"content": "<y>"}]}'}, None),
}


@pytest.mark.parametrize("case", TOKENIZERS)
def test_bad_tokenizer_files_are_tokenizer_errors_naming_the_file(tmp_path, case):
    files, message = TOKENIZERS[case]
    files = {"tokenizer.json": _TOKENIZER_JSON, **files}
    for name, content in files.items():
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    if message is None:
        tokenizer = DistilBertTokenizerFast.from_pretrained(tmp_path)
        assert tokenizer("hello <x>")["input_ids"] == [2, 5, tokenizer.convert_tokens_to_ids("<x>"), 3]
        assert tokenizer.additional_special_tokens == ["<x>", "<y>"]
        return
    with pytest.raises(TokenizerError, match=re.escape(message)) as info:
        DistilBertTokenizerFast.from_pretrained(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_a_string_of_additional_special_tokens_is_refused_by_the_constructor_too():
    with pytest.raises(TokenizerError, match="additional_special_tokens must be a list of special tokens, got 'abc'"):
        DistilBertTokenizerFast(vocab=_VOCAB, additional_special_tokens="abc")


# --------------------------------------------------------------------------------- non-finite weights
def _tiny_with(tmp_path, name, value):
    folder = tmp_path / "model"
    shutil.copytree(TINY_CHECKPOINT, folder)
    weights = {k: np.array(v) for k, v in read_safetensors(folder / "model.safetensors").items()}
    weights[name].reshape(-1)[3] = value
    write_safetensors(folder / "model.safetensors", weights)
    return folder


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_with_the_tensor_name_unless_allowed(tmp_path, value):
    name = "distilbert.transformer.layer.1.ffn.lin1.weight"
    folder = _tiny_with(tmp_path, name, value)
    with pytest.raises(CheckpointError, match=re.escape(f"model.safetensors: tensor '{name}' holds {value} at index [0, 3]")):
        DistilBertForMaskedLM.from_pretrained(folder)
    model = DistilBertForMaskedLM.from_pretrained(folder, allow_nonfinite=True, backend="numpy")
    assert not np.isfinite(model.params["transformer.layer.1.ffn.lin1.weight"][0, 3])
    with pytest.raises(CheckpointError, match="holds"):
        DistilBertModelWithHeads.from_pretrained(folder)


def test_non_finite_weights_of_a_bin_shard_and_an_adapter_are_refused(tmp_path):
    pkl = state(w=tensor())
    write_bin(tmp_path / "pytorch_model.bin", pkl, {"0": np.float32([0, 1, np.inf, 3]).tobytes()})
    with pytest.raises(CheckpointError, match=re.escape("pytorch_model.bin: tensor 'w' holds inf at index [1, 0]")):
        load_state_dict(tmp_path / "pytorch_model.bin")
    assert np.isinf(load_state_dict(tmp_path / "pytorch_model.bin", allow_nonfinite=True)["w"][1, 0])
    adapter = tmp_path / "adapter"
    shutil.copytree(ADAPTERS / "adapters" / "pfeiffer", adapter)
    weights = read_torch_bin(adapter / "pytorch_adapter.bin")
    first = sorted(weights)[0]
    write_safetensors(adapter / "adapter.safetensors", {k: np.full_like(v, np.nan) if k == first else v for k, v in weights.items()})
    (adapter / "pytorch_adapter.bin").unlink()
    model = DistilBertModelWithHeads.from_pretrained(ADAPTERS / "base", backend="numpy")
    with pytest.raises(AdapterError, match=re.escape(f"tensor '{first}' holds nan")):
        model.load_adapter(adapter)


@pytest.mark.parametrize("field,value,message", [
    ("scaling", "NaN", "unknown scaling nan; expected a finite number"),
    ("scaling", "Infinity", "unknown scaling inf"),
    ("scaling", "1e39", "unknown scaling 1e+39"),
    ("reduction_factor", "NaN", "reduction_factor 'default' must be a positive number, got nan"),
])
def test_adapter_configs_with_non_finite_numbers_are_refused(tmp_path, field, value, message):
    adapter = tmp_path / "adapter"
    shutil.copytree(ADAPTERS / "adapters" / "pfeiffer", adapter)
    text = (adapter / "adapter_config.json").read_text()
    text = re.sub(rf'"{field}": [^,\n]+', f'"{field}": {value}', text, count=1)
    (adapter / "adapter_config.json").write_text(text)
    model = DistilBertModelWithHeads.from_pretrained(ADAPTERS / "base", backend="numpy")
    with pytest.raises(AdapterError, match=re.escape(message)):
        model.load_adapter(adapter)


def test_lora_alpha_nan_is_refused(tmp_path):
    adapter = tmp_path / "lora"
    shutil.copytree(ADAPTERS / "adapters" / "lora", adapter)
    text = re.sub(r'"alpha": [^,\n]+', '"alpha": NaN', (adapter / "adapter_config.json").read_text(), count=1)
    (adapter / "adapter_config.json").write_text(text)
    model = DistilBertModelWithHeads.from_pretrained(ADAPTERS / "base", backend="numpy")
    with pytest.raises(AdapterError, match="LoRA alpha must be a positive number, got nan"):
        model.load_adapter(adapter)


# ------------------------------------------------------------------------------- JSON output of the CLI
class _Stdin(io.StringIO):
    """A piped stdin holding `text` (the CLI reads it whole)."""

    def isatty(self):
        return False


def test_the_cli_never_writes_nan_into_json(tmp_path, monkeypatch, capsys):
    """Finite weights so large that float32 overflows: the embedding is NaN, and JSON cannot say so."""
    folder = build_model_dir("base", tmp_path / "model")
    weights = {k: np.array(v) for k, v in read_safetensors(folder / "model.safetensors").items()}
    weights["embeddings.LayerNorm.weight"][:] = 3e38
    write_safetensors(folder / "model.safetensors", weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow warnings are the point
        assert cli.main(["embed", "--model", str(folder), "--backend", "numpy", "hello world"]) == 1
        out, err = capsys.readouterr()
        assert out == "" and 'error: input "hello world": the model\'s output holds NaN or infinity' in err
        monkeypatch.setattr(sys, "stdin", _Stdin("first line\nsecond line\n"))
        assert cli.main(["embed", "--model", str(folder), "--backend", "numpy", "--input", "-"]) == 1
        out, err = capsys.readouterr()
    assert "NaN" not in out and 'input 1 "first line": the model\'s output holds NaN' in err


# -------------------------------------------------------------------------------------- modules.json
def _sentence_dir(tmp_path, modules):
    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (folder / "modules.json").write_text(modules if isinstance(modules, str) else json.dumps(modules))
    return folder


def _pooling(path):
    return [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": path, "type": "sentence_transformers.models.Pooling"}]


@pytest.mark.parametrize("modules,message", [
    (_pooling("../outside"), "'..' is not a plain file name"),
    (_pooling("/etc"), "is an absolute path"),
    (_pooling("linked"), "resolves to"),
    (_pooling(7), "must be a string, got int 7"),
    ([{"type": 7}], "module 0 'type' must be a string, got 7"),
    ({"a": 1}, "must be a list of module objects"),
    ("[" * 100_000 + "]" * 100_000, "nested deeper than 64"),
])
def test_modules_json_cannot_point_outside_the_model_directory(tmp_path, modules, message):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    folder = _sentence_dir(tmp_path, modules)
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigError, match=re.escape(message)):
        read_sentence_config(folder)


def test_modules_json_inside_the_directory_still_works(tmp_path):
    assert read_sentence_config(_sentence_dir(tmp_path, _pooling("1_Pooling"))).pooling == ("cls",)


# ----------------------------------------------------------- amplification under an address-space limit
ADDRESS_SPACE = 2 << 30  # 2 GiB: Python with NumPy maps ~0.15 GiB; unguarded, each attack needs 2 GiB to 1 TiB
_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
sys.path.insert(0, {tests!r})
import hostile_files
from minidistil import MinidistilError
load = hostile_files.AMPLIFICATIONS[{case!r}][1]
try:
    load({path!r})
    outcome = "loaded"
except MinidistilError as exc:
    outcome = type(exc).__name__ + ": " + str(exc)[:300]
except MemoryError:
    outcome = "MemoryError"
# VmHWM: this process's peak resident memory (ru_maxrss would include the parent's, kept across exec)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"outcome": outcome, "peak_rss_mib": peak / 1024}}))
"""


@pytest.mark.parametrize("case", hostile_files.AMPLIFICATIONS)
def test_amplification_attacks_end_in_named_errors_under_an_address_space_limit(tmp_path, case):
    build, _, unguarded, bound_mib = hostile_files.AMPLIFICATIONS[case]
    path = build(tmp_path)
    child = _CHILD.format(limit=ADDRESS_SPACE, tests=str(Path(__file__).parent), case=case, path=str(path))
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})  # one BLAS thread: one stack to reserve
    assert done.returncode == 0, f"{case}: the loader died (status {done.returncode}): {done.stderr[-2000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"].split(":")[0] in ("CheckpointError", "ConfigError"), f"{case}: {result['outcome']}"
    assert result["peak_rss_mib"] < bound_mib, f"{case} peaked at {result['peak_rss_mib']:.0f} MiB (unguarded: {unguarded})"
