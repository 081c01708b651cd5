"""Checkpoint reading and writing: safetensors by hand, torch .bin without pickle code, layouts, checks."""

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from minidistil import CheckpointError
from minidistil.checkpoints.schema import bare_names, check_tensors, drop_tied_copy, expected_shapes, head_tensor_names
from minidistil.checkpoints.loading import find_weights, load_checkpoint, load_state_dict
from minidistil.checkpoints.saving import save_checkpoint
from minidistil.modeling.config import DistilBertConfig
from minidistil.checkpoints.safetensors_io import read_header, read_safetensors, write_safetensors
from minidistil.checkpoints.torch_bin import read_torch_bin

from torch_pickles import global_, int_, state, str_, tensor, tuple_, write_bin

FIXTURES = Path(__file__).parent / "golden" / "checkpoint"
TINY = DistilBertConfig(vocab_size=32, max_position_embeddings=16, n_layers=2, n_heads=2, dim=8, hidden_dim=12)


def is_memory_mapped(array):
    """True when `array` is a view whose memory belongs to an np.memmap (not a copy)."""
    if array.flags.owndata:
        return False
    base = array
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = getattr(base, "base", None)
    return False


# ------------------------------------------------------------------------------- safetensors
def test_safetensors_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "a.weight": rng.standard_normal((3, 5)).astype(np.float32),
        "b": np.arange(7, dtype=np.int64),
        "half": rng.standard_normal(4).astype(np.float16),
        "flag": np.array([True, False]),
        "scalar": np.float32(2.5) * np.ones((), np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "transposed": rng.standard_normal((4, 2)).astype(np.float32).T,
    }
    path = write_safetensors(tmp_path / "t.safetensors", tensors, metadata={"format": "pt"})
    header, metadata, data_start = read_header(path)
    assert metadata == {"format": "pt"} and data_start % 8 == 0
    loaded = read_safetensors(path)
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        expected = value.astype(np.float32) if value.dtype == np.float16 else value
        assert loaded[name].dtype == expected.dtype and np.array_equal(loaded[name], expected), name
    assert read_safetensors(path, float_dtype=None)["half"].dtype == np.float16


def test_safetensors_are_memory_mapped(tmp_path):
    path = write_safetensors(tmp_path / "t.safetensors", {"w": np.ones((64, 64), np.float32)})
    w = read_safetensors(path)["w"]
    assert is_memory_mapped(w)
    assert not w.flags.writeable


def test_interoperates_with_the_safetensors_library(tmp_path):
    tensors = {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "y": np.arange(3, dtype=np.int32)}
    ours = write_safetensors(tmp_path / "ours.safetensors", tensors)
    theirs = safetensors.numpy.load_file(str(ours))
    assert all(np.array_equal(theirs[k], v) for k, v in tensors.items())
    safetensors.numpy.save_file(tensors, str(tmp_path / "theirs.safetensors"))
    back = read_safetensors(tmp_path / "theirs.safetensors")
    assert all(np.array_equal(back[k], v) for k, v in tensors.items())


def test_torch_written_safetensors_upcast_f16_bf16_f64():
    expected = np.load(FIXTURES / "dtypes_expected.npz")
    loaded = read_safetensors(FIXTURES / "dtypes.safetensors")
    for name in ("f32", "f16", "bf16", "f64", "i64", "transposed", "base", "scalar", "empty"):
        assert loaded[name].dtype == expected[name].dtype, name
        assert np.array_equal(loaded[name], expected[name]), name
    assert is_memory_mapped(loaded["f32"])


def test_bf16_bits_are_the_top_half_of_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 0.0, np.inf], np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    header = {"x": {"dtype": "BF16", "shape": [5], "data_offsets": [0, 10]}}
    path = _raw_safetensors(tmp_path / "bf.safetensors", header, bits.tobytes())
    assert np.array_equal(read_safetensors(path)["x"], values)


def _raw_safetensors(path, header, data, header_len=None):
    blob = json.dumps(header).encode() if isinstance(header, dict) else header
    length = len(blob) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", length) + blob + data)
    return path


GOOD = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
MALFORMED = {
    "too short": (b"", None, b"\x01\x02", "too short for the 8-byte header length"),
    "header past end": (GOOD, 10_000, bytes(16), "header length 10000 runs past the end of the file"),
    "not json": (b"{not json", None, b"", "header: not valid JSON"),
    "not utf8": (b'{"\xff": 1}', None, b"", "header: not UTF-8"),
    "not an object": (b"[1, 2]", None, b"", "header must be a JSON object"),
    "duplicate": (b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                  b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', None, bytes(4), "has the key 'w' twice"),
    "unknown dtype": ({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, None, bytes(2),
                      "tensor 'w': dtype 'F8_E4M3' is not supported"),
    "bad shape": ({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}}, None, bytes(8),
                  "shape must be a list of non-negative integers"),
    "missing offsets": ({"w": {"dtype": "F32", "shape": [2]}}, None, bytes(8), "data_offsets must be [begin, end]"),
    "reversed offsets": ({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}, None, bytes(8),
                         "are not an increasing pair"),
    "offsets past data": (GOOD, None, bytes(8), "run past the data region (8 bytes): file truncated?"),
    "size mismatch": ({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}}, None, bytes(16),
                      "hold 16 bytes but shape [2, 3] of F32 needs 24"),
    "overlap": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, None, bytes(12), "overlap in the data region"),
    "bad metadata": ({"__metadata__": {"format": 1}, **GOOD}, None, bytes(16), "__metadata__ must be an object of strings"),
    "entry not object": ({"w": [1, 2]}, None, b"", "entry must be an object"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_safetensors_raise_checkpoint_error(tmp_path, case):
    header, header_len, data, message = MALFORMED[case]
    path = tmp_path / "model.safetensors"
    if case == "too short":
        path.write_bytes(data)
    else:
        _raw_safetensors(path, header, data, header_len)
    with pytest.raises(CheckpointError) as info:
        read_safetensors(path)
    text = str(info.value)
    assert text.startswith("model.safetensors: "), text
    assert message in text, text


def test_good_hand_written_file_loads(tmp_path):
    path = _raw_safetensors(tmp_path / "ok.safetensors", GOOD, np.arange(4, dtype="<f4").tobytes())
    assert np.array_equal(read_safetensors(path)["w"], np.arange(4, dtype=np.float32).reshape(2, 2))


# ------------------------------------------------------------------------------- layouts
def test_find_weights_order_and_missing(tmp_path):
    with pytest.raises(CheckpointError, match="no weights file found.*model.safetensors, model.safetensors.index.json"):
        find_weights(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert find_weights(tmp_path).name == "model.safetensors"


def test_every_layout_loads_the_same_weights():
    _, reference = load_checkpoint(FIXTURES / "tiny_mlm_safetensors")
    for name in ("tiny_mlm_bin", "tiny_mlm_sharded", "tiny_mlm_sharded_bin"):
        config, state = load_checkpoint(FIXTURES / name)
        assert config.dim == 8 and config.architectures == ["DistilBertForMaskedLM"]
        assert sorted(state) == sorted(reference), name
        for key in reference:
            assert state[key].dtype == np.float32 and np.array_equal(state[key], reference[key]), (name, key)
    check_tensors(reference, expected_shapes(TINY, "masked_lm"), "tiny")


def test_prefix_is_stripped_and_projector_tied():
    raw = load_state_dict(FIXTURES / "tiny_mlm_safetensors")
    assert "distilbert.embeddings.word_embeddings.weight" in raw and "vocab_projector.weight" not in raw
    config, state = load_checkpoint(FIXTURES / "tiny_mlm_safetensors")
    assert all(not k.startswith("distilbert.") for k in state)
    # Tied: the projection is the word embedding matrix, not a tensor of its own.
    assert "vocab_projector.weight" not in state and "vocab_projector.bias" in state
    assert is_memory_mapped(state["embeddings.word_embeddings.weight"])


def test_tied_copy_dropped_only_when_tied():
    emb = np.zeros((32, 8), np.float32)
    # transformers 4.57 ties after loading, so a differing stored projection is ignored: it is dropped
    assert "vocab_projector.weight" not in drop_tied_copy({"vocab_projector.weight": emb + 1}, TINY, "ckpt")
    untied = TINY.replace(tie_word_embeddings=False)
    assert drop_tied_copy({"vocab_projector.weight": emb}, untied, "ckpt")["vocab_projector.weight"] is emb
    with pytest.raises(CheckpointError, match=r"vocab_projector.weight: expected \(32, 8\), got \(4, 8\)"):
        drop_tied_copy({"vocab_projector.weight": emb[:4]}, TINY, "ckpt")
    assert "vocab_projector.weight" not in expected_shapes(TINY, "masked_lm")
    assert "vocab_projector.weight" in expected_shapes(untied, "masked_lm")


def test_bare_names_drops_buffers_and_rejects_duplicates():
    w = np.zeros(2, np.float32)
    state = bare_names({"distilbert.embeddings.position_ids": np.arange(3), "distilbert.x": w, "vocab_projector.bias": w})
    assert set(state) == {"x", "vocab_projector.bias"}
    with pytest.raises(CheckpointError, match="'x' appears both with and without the 'distilbert.' prefix"):
        bare_names({"distilbert.x": w, "x": w}, source="ckpt")


def test_sharded_index_errors(tmp_path):
    src = FIXTURES / "tiny_mlm_sharded"
    index = json.loads((src / "model.safetensors.index.json").read_text())

    def write(weight_map, copy_shards=True):
        d = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        shutil.copy(src / "config.json", d)
        if copy_shards:
            for f in src.glob("*.safetensors"):
                shutil.copy(f, d)
        (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
        return d

    wm = index["weight_map"]
    with pytest.raises(CheckpointError, match="shard 'model-00001-of-00004.safetensors' .* does not exist"):
        load_checkpoint(write(wm, copy_shards=False))
    with pytest.raises(CheckpointError, match="is not a file in the checkpoint directory"):
        load_checkpoint(write({**wm, "extra": "../elsewhere.safetensors"}))
    first = sorted(wm)[0]
    with pytest.raises(CheckpointError, match="lacks tensor"):
        load_checkpoint(write({**wm, "ghost": wm[first]}))
    with pytest.raises(CheckpointError, match="needs a \"weight_map\""):
        load_checkpoint(write([]))


def test_missing_config_is_reported(tmp_path):
    shutil.copy(FIXTURES / "tiny_mlm_safetensors" / "model.safetensors", tmp_path)
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(tmp_path)


# ------------------------------------------------------------------------------- check_tensors
def test_missing_tensor_is_listed_with_its_shape():
    _, state = load_checkpoint(FIXTURES / "tiny_mlm_safetensors")
    del state["transformer.layer.1.ffn.lin1.weight"]
    with pytest.raises(CheckpointError) as info:
        check_tensors(state, expected_shapes(TINY, "masked_lm"), source="tiny_mlm")
    text = str(info.value)
    assert "tiny_mlm: checkpoint does not match the model" in text
    assert "missing 1 tensor(s)" in text and "transformer.layer.1.ffn.lin1.weight (12, 8)" in text


def test_all_faults_are_listed_together():
    _, state = load_checkpoint(FIXTURES / "tiny_mlm_safetensors")
    state = dict(state)
    del state["embeddings.LayerNorm.bias"]
    state["transformer.layer.0.ffn.lin2.weight"] = np.zeros((8, 13), np.float32)
    state["transformer.layer.7.attention.q_lin.weight"] = np.zeros((8, 8), np.float32)
    with pytest.raises(CheckpointError) as info:
        check_tensors(state, expected_shapes(TINY, "masked_lm"), source="ckpt")
    text = str(info.value)
    assert "embeddings.LayerNorm.bias (8,)" in text
    assert "transformer.layer.0.ffn.lin2.weight: expected (8, 12), got (8, 13)" in text
    assert "1 unexpected tensor(s)" in text and "transformer.layer.7.attention.q_lin.weight (8, 8)" in text


def test_head_tensors_of_a_task_checkpoint_can_be_ignored():
    _, state = load_checkpoint(FIXTURES / "tiny_mlm_safetensors")
    with pytest.raises(CheckpointError, match="5 unexpected"):  # the MLM head; its tied projector is no tensor
        check_tensors(state, expected_shapes(TINY), source="ckpt")
    params = check_tensors(state, expected_shapes(TINY), source="ckpt", ignore=head_tensor_names())
    assert list(params) == list(expected_shapes(TINY))
    with pytest.raises(CheckpointError, match="missing 4 tensor"):
        check_tensors(state, expected_shapes(TINY, "sequence_classification"), source="ckpt", ignore=head_tensor_names())


def test_head_shapes():
    config = TINY.replace(num_labels=3)
    assert expected_shapes(config, "sequence_classification")["classifier.weight"] == (3, 8)
    assert expected_shapes(config, "DistilBertForMultipleChoice")["classifier.weight"] == (1, 8)
    assert expected_shapes(config, "token_classification")["classifier.bias"] == (3,)
    assert expected_shapes(TINY, "question_answering")["qa_outputs.weight"] == (2, 8)
    assert len(expected_shapes(TINY)) == 4 + 2 * 16
    with pytest.raises(ValueError, match="unknown head"):
        expected_shapes(TINY, "pooler")


# ------------------------------------------------------------------------------- save
@pytest.mark.parametrize("prefix_encoder", [True, False])
def test_save_and_reload(tmp_path, prefix_encoder):
    config, state = load_checkpoint(FIXTURES / "tiny_mlm_safetensors")
    params = check_tensors(state, expected_shapes(config, "masked_lm"), "tiny")
    save_checkpoint(tmp_path, config, params, prefix_encoder=prefix_encoder)
    names = set(read_header(tmp_path / "model.safetensors")[0])
    assert "vocab_projector.weight" not in names  # tied: left out, as the reference does
    assert ("distilbert.embeddings.word_embeddings.weight" in names) == prefix_encoder
    assert ("embeddings.word_embeddings.weight" in names) == (not prefix_encoder)
    assert read_header(tmp_path / "model.safetensors")[1] == {"format": "pt"}
    config2, state2 = load_checkpoint(tmp_path)
    assert config2 == config
    assert sorted(state2) == sorted(params)
    assert all(np.array_equal(state2[k], params[k]) for k in params)


def test_untied_projection_is_saved(tmp_path):
    config, state = load_checkpoint(FIXTURES / "tiny_mlm_safetensors")
    state = dict(state, **{"vocab_projector.weight": np.ones((32, 8), np.float32)})
    save_checkpoint(tmp_path, config.replace(tie_word_embeddings=False), state, prefix_encoder=True)
    assert "vocab_projector.weight" in read_header(tmp_path / "model.safetensors")[0]
    save_checkpoint(tmp_path, config, state, prefix_encoder=True)  # tied: a copy is never written
    assert "vocab_projector.weight" not in read_header(tmp_path / "model.safetensors")[0]


# ------------------------------------------------------------------------------- torch .bin
def test_torch_bin_dtypes_and_layouts():
    expected = np.load(FIXTURES / "dtypes_expected.npz")
    loaded = read_torch_bin(FIXTURES / "dtypes.bin")
    assert sorted(loaded) == sorted(expected.files)
    for name in expected.files:
        assert loaded[name].dtype == expected[name].dtype, name
        assert loaded[name].shape == expected[name].shape, name
        assert np.array_equal(loaded[name], expected[name]), name
    assert is_memory_mapped(loaded["f32"])
    assert is_memory_mapped(loaded["offset_slice"])  # a view at an offset of the shared storage
    assert np.shares_memory(loaded["offset_slice"], loaded["base"])
    assert read_torch_bin(FIXTURES / "dtypes.bin", float_dtype=None)["f16"].dtype == np.float16


def test_torch_bin_equals_safetensors_of_the_same_model():
    from_bin = read_torch_bin(FIXTURES / "tiny_mlm_bin" / "pytorch_model.bin")
    from_st = read_safetensors(FIXTURES / "tiny_mlm_safetensors" / "model.safetensors")
    for name, value in from_st.items():
        assert np.array_equal(from_bin[name], value), name
    # torch.save keeps the tied projection, sharing the embeddings' storage.
    assert np.shares_memory(from_bin["vocab_projector.weight"], from_bin["distilbert.embeddings.word_embeddings.weight"])


def test_legacy_torch_file_is_refused():
    with pytest.raises(CheckpointError, match="legacy.bin is a legacy \\(non-zip\\) torch checkpoint"):
        read_torch_bin(FIXTURES / "legacy.bin")


def test_not_a_torch_file(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"hello world")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: not a torch checkpoint"):
        read_torch_bin(tmp_path / "pytorch_model.bin")


def test_hand_built_bin_loads(tmp_path):
    path = write_bin(tmp_path / "pytorch_model.bin", state(w=tensor(), t=tensor(stride=(1, 2))))
    loaded = read_torch_bin(path)
    assert np.array_equal(loaded["w"], np.arange(4, dtype=np.float32).reshape(2, 2))
    assert np.array_equal(loaded["t"], np.arange(4, dtype=np.float32).reshape(2, 2).T)
    assert is_memory_mapped(loaded["w"])


@pytest.mark.parametrize("module,name", [("os", "system"), ("posix", "system"), ("builtins", "eval"),
                                         ("subprocess", "Popen"), ("torch", "load"), ("torch._utils", "_rebuild_qtensor")])
def test_disallowed_global_is_refused_and_not_run(tmp_path, module, name):
    marker = tmp_path / "pwned"
    payload = global_(module, name) + tuple_(str_(f"touch {marker}")) + b"R"
    path = write_bin(tmp_path / "pytorch_model.bin", state(w=payload))
    with pytest.raises(CheckpointError) as info:
        read_torch_bin(path)
    assert str(info.value) == f"pytorch_model.bin: pickle global {module}.{name} is not allowed"
    assert not marker.exists()


def test_stack_global_goes_through_the_allow_list_too(tmp_path):
    # Protocol 4: STACK_GLOBAL (\x93) takes module and name from the stack.
    pkl = b"\x80\x04" + b"\x8c\x02os\x8c\x06system\x93" + b"\x8c\x04true\x85R."
    path = write_bin(tmp_path / "pytorch_model.bin", pkl)
    with pytest.raises(CheckpointError, match="pickle global os.system is not allowed"):
        read_torch_bin(path)


def test_build_on_an_allowed_object_is_refused(tmp_path):
    # BUILD (b) on the stand-in for _rebuild_tensor_v2 would tamper with it; it refuses.
    pkl = b"\x80\x02" + global_("torch._utils", "_rebuild_tensor_v2") + b"}" + str_("fn") + str_("x") + b"sb."
    path = write_bin(tmp_path / "pytorch_model.bin", pkl)
    with pytest.raises(CheckpointError, match="BUILD"):
        read_torch_bin(path)


def test_tensor_outside_its_storage_is_refused(tmp_path):
    path = write_bin(tmp_path / "pytorch_model.bin", state(w=tensor(offset=1)))
    with pytest.raises(CheckpointError, match=r"reaches element 4 of storage '0', which has 4"):
        read_torch_bin(path)
    path = write_bin(tmp_path / "expanded.bin", state(w=tensor(size=(100000, 100000), stride=(0, 0))))
    with pytest.raises(CheckpointError, match="has 10000000000 elements, more than storage '0' holds"):
        read_torch_bin(path)
    path = write_bin(tmp_path / "short.bin", state(w=tensor(numel=8)))
    with pytest.raises(CheckpointError, match="should hold 8 torch.FloatStorage elements \\(32 bytes\\) but its record has 16"):
        read_torch_bin(path)
    path = write_bin(tmp_path / "nostorage.bin", state(w=tensor(key="9")))
    with pytest.raises(CheckpointError, match="storage '9' has no record"):
        read_torch_bin(path)


def test_non_tensor_entries_and_non_dicts_are_refused(tmp_path):
    path = write_bin(tmp_path / "a.bin", state(epoch=int_(3)))
    with pytest.raises(CheckpointError, match="entry 'epoch' is a int, not a tensor"):
        read_torch_bin(path)
    path = write_bin(tmp_path / "b.bin", b"\x80\x02" + tuple_(int_(1)) + b".")
    with pytest.raises(CheckpointError, match="expected a state dict"):
        read_torch_bin(path)
    path = write_bin(tmp_path / "c.bin", b"\x80\x02" + str_("truncated"))
    with pytest.raises(CheckpointError, match="cannot unpickle"):
        read_torch_bin(path)


def test_config_overrides_on_load():
    config, _ = load_checkpoint(FIXTURES / "tiny_mlm_safetensors", num_labels=3)
    assert config.num_labels == 3 and config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    from minidistil import ConfigError

    with pytest.raises(ConfigError, match="with overrides .*activation 'tanh' is not supported"):
        load_checkpoint(FIXTURES / "tiny_mlm_safetensors", activation="tanh")


def test_save_already_prefixed_names_drops_the_tied_projector(tmp_path):
    config, state = load_checkpoint(FIXTURES / "tiny_mlm_safetensors")
    prefixed = {("distilbert." + k if k.startswith(("embeddings.", "transformer.")) else k): v for k, v in state.items()}
    save_checkpoint(tmp_path, config, prefixed)
    names = set(read_header(tmp_path / "model.safetensors")[0])
    assert "vocab_projector.weight" not in names and "distilbert.embeddings.word_embeddings.weight" in names
