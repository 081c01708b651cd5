"""tf_model.h5 and flax_model.msgpack against transformers' TF and Flax classes, and malformed files.

Goldens: tests/golden/formats/tf_flax, written by tools/goldens/make_tf_flax_goldens.py with
transformers' TFDistilBert* / FlaxDistilBert* classes (they saved the checkpoints and computed the
outputs). Every output (heads' fields, all hidden states, all attentions) within 1e-4.
"""

import shutil
import sys

import numpy as np
import pytest

import minidistil
from minidistil import CheckpointError, MissingExtraError
from minidistil.checkpoints.flax_msgpack import read_flax_msgpack
from minidistil.checkpoints.loading import load_state_dict
from minidistil.checkpoints.tf_h5 import read_tf_h5
from minidistil.modeling.classes import MODEL_CLASSES

from format_goldens import Golden

h5py = pytest.importorskip("h5py", reason='tf_model.h5 needs h5py: pip install "minidistil[tf]"')
msgpack = pytest.importorskip("msgpack", reason='flax_model.msgpack needs msgpack: pip install "minidistil[flax]"')

GOLDEN = Golden("tf_flax", "TF / Flax goldens")
CASES = GOLDEN.cases



def framework_call(model, case, ids, mask):
    """Each framework's own call style: TF takes the inputs as one dict, Flax positionally."""
    if case["framework"] == "tf":
        return model({"input_ids": ids, "attention_mask": mask}, output_hidden_states=True, output_attentions=True)
    return model(ids, mask, output_hidden_states=True, output_attentions=True, train=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_framework_class_matches_reference(name, kernel_backend):
    case = CASES[name]
    cls = getattr(minidistil, case["reference_class"])  # TFDistilBertForMaskedLM etc.: our NumPy class of that name
    model = cls.from_pretrained(GOLDEN.dir / case["directory"], backend=kernel_backend)
    out = framework_call(model, case, *GOLDEN.ids_and_mask(case))
    GOLDEN.record(kernel_backend, name, GOLDEN.compare(out, case))


@pytest.mark.parametrize("name", sorted(CASES))
def test_plain_class_loads_the_framework_file(name):
    """A directory whose only weights are tf_model.h5 / flax_model.msgpack loads into the plain class, with or
    without the reference's from_tf / from_flax flag."""
    case = CASES[name]
    cls = MODEL_CLASSES[case["plain_class"]]
    flag = {"tf": "from_tf", "flax": "from_flax"}[case["framework"]]
    ids, mask = GOLDEN.ids_and_mask(case)
    for kwargs in ({}, {flag: True}):
        model = cls.from_pretrained(GOLDEN.dir / case["directory"], backend="numpy", **kwargs)
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        GOLDEN.record("numpy", f"{name} as {cls.__name__} {kwargs or ''}", GOLDEN.compare(out, case))


def test_every_class_config_and_activation_is_covered():
    reference = {c["reference_class"] for c in CASES.values()}
    for framework in ("TF", "Flax"):
        for plain in MODEL_CLASSES:
            assert f"{framework}{plain}" in reference
    configs = GOLDEN.manifest["configs"]
    used = {configs[c["config"]]["activation"] for c in CASES.values()}
    assert used == {"gelu", "relu", "gelu_new"}
    assert any(configs[c["config"]].get("sinusoidal_pos_embds") for c in CASES.values())
    ids, mask = GOLDEN.inputs["input_ids"], GOLDEN.inputs["attention_mask"]
    assert (mask == 0).any(axis=1).sum() == 2  # padded batches


def test_framework_flags_pick_the_file(tmp_path):
    """from_tf reads tf_model.h5 even when PyTorch weights are there too; a missing file is named."""
    tf_dir = GOLDEN.dir / "tf" / "seq_cls"
    both = tmp_path / "both"
    shutil.copytree(tf_dir, both)
    model = minidistil.DistilBertForSequenceClassification.from_pretrained(both, backend="numpy")
    model.save_pretrained(both)  # now model.safetensors too, the same weights
    again = minidistil.DistilBertForSequenceClassification.from_pretrained(both, backend="numpy", from_tf=True)
    for key, value in model.params.items():
        np.testing.assert_array_equal(again.params[key], value)
    with pytest.raises(CheckpointError, match="flax_model.msgpack"):
        minidistil.DistilBertForSequenceClassification.from_pretrained(tf_dir, from_flax=True)
    with pytest.raises(ValueError, match="at most one"):
        minidistil.DistilBertModel.from_pretrained(tf_dir, from_tf=True, from_flax=True)


def test_saved_framework_model_names_the_plain_class(tmp_path):
    model = minidistil.TFDistilBertForQuestionAnswering.from_pretrained(GOLDEN.dir / "tf" / "qa", backend="numpy")
    model.save_pretrained(tmp_path)
    assert minidistil.DistilBertConfig.from_pretrained(tmp_path).architectures == ["DistilBertForQuestionAnswering"]


# ------------------------------------------------------------------ the frameworks' call styles


def test_tf_call_style(tmp_path):
    case = CASES["tf/seq_cls"]
    model = minidistil.TFDistilBertForSequenceClassification.from_pretrained(GOLDEN.dir / case["directory"], backend="numpy")
    ids, mask = GOLDEN.ids_and_mask(case)
    enc = minidistil.BatchEncoding({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    out = model(enc)
    np.testing.assert_allclose(out.logits, GOLDEN.expected[case["outputs"]["logits"]], atol=1e-4)
    assert out[0] is out.logits and out["logits"] is out.logits
    assert isinstance(model(enc, return_dict=False), tuple)
    with pytest.raises(TypeError, match="attention_mask given both"):
        model(enc, attention_mask=mask)
    with pytest.raises(ValueError, match="training=True"):
        model(enc, training=True)
    with pytest.raises(TypeError, match="computes no loss.*DistilBertForSequenceClassification"):
        model(enc, labels=np.zeros(3, dtype=np.int64))


def test_flax_call_style():
    case = CASES["flax/qa"]
    model = minidistil.FlaxDistilBertForQuestionAnswering.from_pretrained(GOLDEN.dir / case["directory"], backend="numpy")
    ids, mask = GOLDEN.ids_and_mask(case)
    out = model(ids, mask)
    np.testing.assert_allclose(out.start_logits, GOLDEN.expected[case["outputs"]["start_logits"]], atol=1e-4)
    assert out.hidden_states is None
    with pytest.raises(ValueError, match="params="):
        model(ids, mask, params={"distilbert": {}})
    with pytest.raises(ValueError, match="train=True"):
        model(ids, mask, train=True)
    with pytest.raises(TypeError, match="computes no loss"):
        model(ids, mask, start_positions=[0, 1, 2], end_positions=[1, 2, 3])


# ------------------------------------------------------------------ malformed tf_model.h5


def h5_copy(tmp_path, edit):
    """A copy of the TF seq_cls checkpoint's tf_model.h5, changed by edit(h5 file opened for writing)."""
    path = tmp_path / "tf_model.h5"
    shutil.copy(GOLDEN.dir / "tf" / "seq_cls" / "tf_model.h5", path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


KERNEL = "classifier/tf_distil_bert_for_sequence_classification/classifier/kernel:0"


def replace_dataset(f, key, **create):
    del f[key]
    f.create_dataset(key, **create)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: f.create_dataset("extra/ref", data=[f["classifier"].ref], dtype=h5py.ref_dtype), "object references"),
        (lambda f: f.create_dataset("extra/text", data=np.array(["a", "b"], dtype=object),
                                    dtype=h5py.string_dtype()), "object references or variable-length"),
        (lambda f: f.create_dataset("extra/pair", data=np.zeros(2, dtype=[("a", "f4"), ("b", "f4")])), "dtype"),
        (lambda f: replace_dataset(f, KERNEL, data=np.zeros((16, 3), np.float32), compression="gzip"), "compressed"),
        (lambda f: f.__setitem__("extra/link", h5py.ExternalLink("/etc/passwd", "/")), "ExternalLink"),
        (lambda f: f.__setitem__("extra/soft", h5py.SoftLink("/classifier")), "SoftLink"),
        (lambda f: f.create_dataset("extra/empty", shape=(1000, 1000), dtype="f4"), "needs 4000000 bytes but 0 are stored"),
        (lambda f: f.attrs.__delitem__("layer_names"), "no 'layer_names' attribute"),
        (lambda f: f["classifier"].attrs.__setitem__("weight_names", [b"x/classifier/missing:0"]), "has no dataset"),
        (lambda f: f.attrs.__setitem__("layer_names", [f["classifier"].ref]), "holds Reference"),
    ],
    ids=["reference", "strings", "compound", "gzip", "external-link", "soft-link", "unstored", "no-layer-names",
         "missing-dataset", "reference-attribute"],
)
def test_malformed_h5_is_refused(tmp_path, edit, message):
    with pytest.raises(CheckpointError, match=message):
        read_tf_h5(h5_copy(tmp_path, edit))


def test_external_storage_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.zeros(48, np.float32).tobytes())

    def edit(f):
        replace_dataset(f, KERNEL, shape=(16, 3), dtype="<f4", external=[(str(outside), 0, 192)])

    with pytest.raises(CheckpointError, match="outside this file"):
        read_tf_h5(h5_copy(tmp_path, edit))


def test_truncated_and_reshaped_h5(tmp_path):
    data = (GOLDEN.dir / "tf" / "seq_cls" / "tf_model.h5").read_bytes()
    (tmp_path / "tf_model.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable HDF5 file"):
        read_tf_h5(tmp_path / "tf_model.h5")
    (tmp_path / "tf_model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(CheckpointError, match="not a readable HDF5 file"):
        read_tf_h5(tmp_path / "tf_model.h5")
    directory = tmp_path / "wrong"
    shutil.copytree(GOLDEN.dir / "tf" / "seq_cls", directory)
    with h5py.File(directory / "tf_model.h5", "r+") as f:
        replace_dataset(f, KERNEL, data=np.zeros((16, 4), np.float32))
    with pytest.raises(CheckpointError, match=r"classifier.weight: expected \(3, 16\), got \(4, 16\)"):
        minidistil.TFDistilBertForSequenceClassification.from_pretrained(directory)


# ------------------------------------------------------------------ malformed flax_model.msgpack


def flax_file(tmp_path, tree=None, raw=None):
    path = tmp_path / "flax_model.msgpack"
    path.write_bytes(raw if raw is not None else msgpack.packb(tree, use_bin_type=True))
    return path


def flax_array(array, dtype_name=None, data=None, shape=None):
    """An array leaf encoded as flax.serialization does: ext type 1 holding msgpack [shape, dtype, bytes]."""
    payload = msgpack.packb((list(array.shape if shape is None else shape), (dtype_name or array.dtype.name).encode(),
                             array.tobytes() if data is None else data), use_bin_type=True)
    return msgpack.ExtType(1, payload)


def test_flax_array_encoding_reads_back(tmp_path):
    """The encoding the malformed cases below start from reads back: bfloat16 included."""
    bf16_bits = np.array([0x3F80, 0xC000], dtype="<u2")  # 1.0, -2.0
    tree = {"classifier": {"kernel": flax_array(np.arange(6, dtype=np.float32).reshape(2, 3)),
                           "bias": flax_array(bf16_bits, "bfloat16")}}
    state = read_flax_msgpack(flax_file(tmp_path, tree))
    np.testing.assert_array_equal(state["classifier.weight"], np.arange(6, dtype=np.float32).reshape(2, 3).T)
    np.testing.assert_array_equal(state["classifier.bias"], [1.0, -2.0])


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"a": {"kernel": msgpack.ExtType(3, b"\x93\x90\xa7float32\xc4\x04\0\0\0\0")}}, "extension type 3"),
        ({"a": {"kernel": msgpack.ExtType(42, b"")}}, "extension type 42"),
        ({"a": {"kernel": flax_array(np.zeros(3, np.float32), data=b"\0" * 8)}}, "needs 12 bytes, got 8"),
        ({"a": {"kernel": flax_array(np.zeros(3, np.float32), "object")}}, "dtype 'object'"),
        ({"a": {"kernel": flax_array(np.zeros(3, np.float32), shape=[-3])}}, "non-negative ints"),
        ({"a": {"kernel": msgpack.ExtType(1, msgpack.packb([[3], b"float32"]))}}, r"not \[shape, dtype, data\]"),
        ({"a": {"kernel": [1.0, 2.0]}}, "is a list, expected an array"),
        ({"a": {"__msgpack_chunked_array__": True, "shape": {"0": 3}, "chunks": {}}}, "split into chunks"),
        ({"a": {"gate": flax_array(np.zeros(3, np.float32))}}, "leaf name 'gate'"),
        ({"a": {"kernel": flax_array(np.zeros(3, np.float32))}}, "expected 2 dimensions"),
        ([1, 2, 3], "top level is a list"),
    ],
    ids=["npscalar-ext", "unknown-ext", "short-data", "object-dtype", "negative-shape", "short-triple", "list-leaf",
         "chunked", "unknown-leaf", "1-d-kernel", "top-level-list"],
)
def test_malformed_msgpack_is_refused(tmp_path, tree, message):
    with pytest.raises(CheckpointError, match=message):
        read_flax_msgpack(flax_file(tmp_path, tree))


def test_truncated_deep_and_reshaped_msgpack(tmp_path):
    data = (GOLDEN.dir / "flax" / "seq_cls" / "flax_model.msgpack").read_bytes()
    with pytest.raises(CheckpointError, match="not a valid msgpack file"):
        read_flax_msgpack(flax_file(tmp_path, raw=data[: len(data) - 100]))
    with pytest.raises(CheckpointError, match="not a valid msgpack file"):
        read_flax_msgpack(flax_file(tmp_path, raw=b"\x81\xa1a" * 5000 + b"\x01"))  # nested 5000 deep
    with pytest.raises(CheckpointError, match="not a valid msgpack file"):
        read_flax_msgpack(flax_file(tmp_path, raw=msgpack.packb({1: 2})))  # integer key
    directory = tmp_path / "wrong"
    shutil.copytree(GOLDEN.dir / "flax" / "seq_cls", directory)
    tree = msgpack.unpackb((directory / "flax_model.msgpack").read_bytes(), raw=False)
    tree["classifier"]["bias"] = flax_array(np.zeros(4, np.float32))
    (directory / "flax_model.msgpack").write_bytes(msgpack.packb(tree, use_bin_type=True))
    with pytest.raises(CheckpointError, match=r"classifier.bias: expected \(3,\), got \(4,\)"):
        minidistil.FlaxDistilBertForSequenceClassification.from_pretrained(directory)


# ------------------------------------------------------------------ missing extras


@pytest.mark.parametrize("module, extra, directory", [("h5py", "tf", "tf/seq_cls"), ("msgpack", "flax", "flax/seq_cls")])
def test_missing_extra_is_named(monkeypatch, module, extra, directory):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(MissingExtraError, match=rf'pip install "minidistil\[{extra}\]"'):
        load_state_dict(GOLDEN.dir / directory)
    assert issubclass(MissingExtraError, ImportError) and issubclass(MissingExtraError, minidistil.MinidistilError)
