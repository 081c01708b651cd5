"""model.onnx: each class loaded from a torch.onnx export matches ONNX Runtime on that file; bad graphs refused.

Goldens: tests/golden/formats/onnx, written by tools/goldens/make_onnx_goldens.py (torch exporter,
ONNX Runtime's outputs for the same files). Malformed variants are made here from those files with
the onnx package.
"""

import shutil
import sys

import numpy as np
import pytest

import minidistil
from minidistil import CheckpointError, MissingExtraError
from minidistil.checkpoints.loading import load_state_dict
from minidistil.checkpoints.onnx_graph import read_onnx
from minidistil.modeling.classes import MODEL_CLASSES

from format_goldens import Golden

onnx = pytest.importorskip("onnx", reason='model.onnx needs the onnx package: pip install "minidistil[onnx]"')

GOLDEN = Golden("onnx", "ONNX goldens (vs ONNX Runtime on the same file)")
CASES = GOLDEN.cases



@pytest.mark.parametrize("name", sorted(CASES))
def test_export_matches_onnx_runtime(name, kernel_backend):
    case = CASES[name]
    model = MODEL_CLASSES[case["reference_class"]].from_pretrained(GOLDEN.dir / case["directory"], backend=kernel_backend)
    ids, mask = GOLDEN.ids_and_mask(case)
    GOLDEN.record(kernel_backend, name, GOLDEN.compare(model(input_ids=ids, attention_mask=mask), case))


def test_every_class_and_layout_is_covered():
    assert {c["reference_class"] for c in CASES.values()} == set(MODEL_CLASSES)
    assert any(c["file"].endswith("onnx/model.onnx") for c in CASES.values())  # under onnx/
    assert any(c["external_data"] for c in CASES.values())
    assert {c["opset"] for c in CASES.values()} == {14, 17}
    # the exporter merged equal tensors into one initializer, keeping the other names as Identity outputs
    graph = onnx.load(str(GOLDEN.dir / CASES["model"]["file"])).graph
    assert any(n.op_type == "Identity" and n.output[0].endswith("attention.k_lin.bias") for n in graph.node)
    # and the Linear weights are anonymous constants, recovered through the graph
    assert not any(i.name.endswith("q_lin.weight") for i in graph.initializer)


def copy_case(tmp_path, name="seq_cls"):
    target = tmp_path / name
    shutil.copytree(GOLDEN.dir / CASES[name]["directory"], target)
    return target


def edited(tmp_path, edit, name="seq_cls"):
    """A copy of a golden export whose ModelProto was changed by edit(model)."""
    directory = copy_case(tmp_path, name)
    path = directory / "model.onnx"
    model = onnx.load(str(path), load_external_data=False)
    edit(model)
    onnx.save_model(model, str(path))
    return directory


def add_function(model):
    body = onnx.helper.make_node("Identity", ["x"], ["y"])
    model.functions.append(onnx.helper.make_function("custom", "Twice", ["x"], ["y"], [body], [onnx.helper.make_opsetid("", 17)]))


def add_contrib_node(model):
    model.graph.node.append(onnx.helper.make_node("FusedGemm", ["input_ids"], ["fused"], domain="com.microsoft"))


def drop_matmuls_of(linear):
    def edit(model):
        keep = [n for n in model.graph.node if not (n.op_type == "MatMul" and f"/{linear}/" in n.name)]
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return edit


def resize_initializer(name, shape):
    def edit(model):
        (tensor,) = [t for t in model.graph.initializer if t.name == name]
        tensor.CopyFrom(onnx.numpy_helper.from_array(np.zeros(shape, np.float32), name))
    return edit


def int8_initializer(model):
    (tensor,) = [t for t in model.graph.initializer if t.name == "classifier.bias"]
    tensor.CopyFrom(onnx.numpy_helper.from_array(np.zeros(3, np.int8), "classifier.bias"))


@pytest.mark.parametrize(
    "edit, message",
    [
        (add_function, r"defines ONNX functions \(custom.Twice\)"),
        (add_contrib_node, r"outside the ONNX standard \(com.microsoft.FusedGemm x1\)"),
        (drop_matmuls_of("layer.0/attention/q_lin"),
         "cannot recover the weight of bias 'distilbert.transformer.layer.0.attention.q_lin.bias'"),
        (resize_initializer("classifier.bias", (4,)), r"classifier.bias: expected \(3,\), got \(4,\)"),
        (int8_initializer, "has type INT8"),
    ],
    ids=["function", "contrib-op", "untraceable-weight", "wrong-shape", "int8-weight"],
)
def test_malformed_graph_is_refused(tmp_path, edit, message):
    with pytest.raises(CheckpointError, match=message):
        MODEL_CLASSES["DistilBertForSequenceClassification"].from_pretrained(edited(tmp_path, edit))


@pytest.mark.parametrize(
    "bad, message",
    [
        ("quantized", r"a quantized graph \(.*DynamicQuantizeLinear x"),
        ("bert", r"not a DistilBERT graph: it holds parameters of another model \(embeddings.token_type_embeddings"),
    ],
)
def test_foreign_and_quantized_exports_are_refused(bad, message):
    path = GOLDEN.dir / GOLDEN.manifest["bad"][bad]
    with pytest.raises(CheckpointError, match=message):
        read_onnx(path)


def test_truncated_file_is_refused(tmp_path):
    directory = copy_case(tmp_path)
    data = (directory / "model.onnx").read_bytes()
    (directory / "model.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        MODEL_CLASSES["DistilBertForSequenceClassification"].from_pretrained(directory)


def set_location(location=None, length=None):
    def edit(model):
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location" and location is not None:
                    entry.value = location
                if entry.key == "length" and length is not None and tensor.name == "classifier.bias":
                    entry.value = str(length)
    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (set_location("../outside.bin"), r"external data '../outside.bin' is not a file inside"),
        (set_location("/etc/hostname"), r"external data '/etc/hostname' is not a file inside"),
        (set_location("missing.bin"), r"external data 'missing.bin' is not a file inside"),
        (set_location(length=8), "does not hold the tensor's 20 bytes"),
    ],
    ids=["parent-dir", "absolute", "missing", "wrong-length"],
)
def test_external_data_stays_inside_and_fits(tmp_path, edit, message):
    (tmp_path / "outside.bin").write_bytes(b"\0" * 10**6)
    directory = edited(tmp_path, edit, name="token_cls")
    with pytest.raises(CheckpointError, match=message):
        MODEL_CLASSES["DistilBertForTokenClassification"].from_pretrained(directory)


def test_external_data_symlink_out_of_the_directory_is_refused(tmp_path):
    directory = copy_case(tmp_path, "token_cls")
    outside = tmp_path / "elsewhere.bin"
    shutil.move(directory / "model.onnx_data", outside)
    (directory / "model.onnx_data").symlink_to(outside)
    with pytest.raises(CheckpointError, match="is not a file inside"):
        MODEL_CLASSES["DistilBertForTokenClassification"].from_pretrained(directory)


def test_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingExtraError, match=r'pip install "minidistil\[onnx\]"'):
        load_state_dict(GOLDEN.dir / CASES["seq_cls"]["directory"])


def test_onnx_directory_without_other_weights_reports_what_it_looked_for(tmp_path):
    (tmp_path / "config.json").write_text((GOLDEN.dir / "seq_cls" / "config.json").read_text())
    with pytest.raises(CheckpointError, match="looked for .*tf_model.h5, flax_model.msgpack, model.onnx, onnx/model.onnx"):
        minidistil.DistilBertModel.from_pretrained(tmp_path)


def test_a_graph_of_something_else_says_what_it_holds(tmp_path):
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])],
        [onnx.numpy_helper.from_array(np.eye(2, dtype=np.float32), "W")],
    )
    onnx.save_model(helper.make_model(graph), str(tmp_path / "model.onnx"))
    with pytest.raises(CheckpointError, match="not a DistilBERT graph: inputs x; initializers W; operators MatMul x1"):
        read_onnx(tmp_path / "model.onnx")


def test_a_transpose_that_does_not_fit_is_refused(tmp_path):
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["w"], ["embeddings.word_embeddings.weight"], perm=[0, 5])], "bad",
        [], [helper.make_tensor_value_info("embeddings.word_embeddings.weight", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.zeros((2, 3), np.float32), "w")],
    )
    onnx.save_model(helper.make_model(graph), str(tmp_path / "model.onnx"))
    with pytest.raises(CheckpointError, match=r"Transpose to 'embeddings.word_embeddings.weight' has perm \[0, 5\]"):
        read_onnx(tmp_path / "model.onnx")
