"""model.onnx: the weights of an exported DistilBERT, recovered from the graph.

An ONNX export keeps the weights as the graph's initializers, but not all under their names.
torch.onnx.export (and optimum, which calls it) folds constants: each Linear's `x @ W.T + b` becomes

    MatMul(x, onnx::MatMul_307) -> Add(., distilbert.transformer.layer.0.attention.q_lin.bias)

where `onnx::MatMul_307` is the anonymous constant W.T ([in, out]), while biases, LayerNorms and
embeddings keep their names. Tensors with equal values are merged into one initializer, and each
name that lost its own is kept as the output of an Identity node. So the weights are recovered in
two steps:

    1. every constant value named like a DistilBERT parameter (initializers, and Identity /
       Transpose of a constant) is taken as it is;
    2. each Linear whose weight has no name is found through its named bias: the Add that consumes
       the bias adds a MatMul whose other input is a constant W.T (or a Gemm takes W and the bias).

Refused, with an error saying what was found: graphs whose named parameters are not DistilBERT's
or that name no DistilBERT embeddings and layers (another architecture), quantized graphs
(QuantizeLinear, MatMulInteger, ... or 8-bit initializers: the float weights are gone), ONNX
functions and operators outside the standard domain (fused contrib ops such as
com.microsoft.Attention hide the weights; a function's body is code this reader will not
interpret). External data files are followed only when they lie inside
the ONNX file's own directory, are read at the offset and length the tensor states, and must hold
exactly its size.

Reading the protobuf uses the `onnx` package (`pip install "minidistil[onnx]"`) rather than a
hand-written wire-format reader: it is maintained by the ONNX project, parses with protobuf's C
runtime, knows every tensor data field and dtype, and decoding builds plain messages (nothing in
the file runs). It is not measurably worse: for a distilbert-base-size export (265 MB, 2-core AMD
EPYC) `onnx.load` takes 0.7-0.8 s of the 2.3-2.8 s this reader needs, the rest being array copies
and transposing the folded kernels back, which a hand-written reader would pay too. The package
is needed only for this format.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..extras import import_extra
from .schema import (
    EMBEDDINGS_NORM,
    ENCODER_PREFIX,
    LAYER_MODULES,
    LINEAR_NAMES,
    POSITION_EMBEDDINGS,
    WORD_EMBEDDINGS,
    head_tensor_names,
)

ONNX_WEIGHTS_NAMES = ("model.onnx", "onnx/model.onnx")
STANDARD_DOMAINS = ("", "ai.onnx")
QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul",
    "QLinearConv", "ConvInteger", "QGemm", "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
    "MatMulNBits", "MatMulBnb4", "GatherBlockQuantized", "QOrderedMatMul", "QEmbedLayerNormalization",
})
FLOAT_TYPES = ("FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16")  # weight dtypes read
HEAD_LINEARS = ("vocab_transform", "vocab_projector", "pre_classifier", "classifier", "qa_outputs")
LINEAR_MODULES = frozenset(LINEAR_NAMES) | frozenset(HEAD_LINEARS)
PARAMETER_LIKE = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)*\.(weight|bias)$")  # a module path + weight/bias: a named parameter
LAYER_PARAM = re.compile(r"^transformer\.layer\.\d+\.(.+)\.(weight|bias)$")
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def read_onnx(path, *, float_dtype=np.float32) -> dict[str, np.ndarray]:
    """The DistilBERT weights of an ONNX export, in schema.py's names (task prefix "distilbert." kept)."""
    path = Path(path)
    onnx = import_extra("onnx", "onnx", f"reading {path.name} (an ONNX export)")
    graph = _load_graph(onnx, path)
    constants = Constants(onnx, graph, path, float_dtype)
    names = constants.names()
    foreign = [n for n in names if PARAMETER_LIKE.match(n) and not _is_parameter(n)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f", ... ({len(foreign)} in all)" if len(foreign) > 5 else "")
        raise CheckpointError(f"{path}: not a DistilBERT graph: it holds parameters of another model ({shown})")
    state = {name: constants.value(name) for name in names if _is_parameter(name)}
    producers = {out: node for node in graph.node for out in node.output}
    for bias in [n for n in state if n.endswith(".bias") and n.split(".")[-2] in LINEAR_MODULES]:
        weight = bias[: -len("bias")] + "weight"
        if weight not in state:
            users = [node for node in graph.node if bias in node.input]
            state[weight] = _weight_through_graph(users, producers, constants, bias, path)
    bare = {n[len(ENCODER_PREFIX):] if n.startswith(ENCODER_PREFIX) else n for n in state}
    if WORD_EMBEDDINGS not in bare or not any(n.startswith("transformer.layer.") for n in bare):
        raise CheckpointError(f"{path}: not a DistilBERT graph: {_summary(graph)}")
    return state


def _load_graph(onnx, path):
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:  # truncated or not protobuf
        raise CheckpointError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if model.functions:
        names = ", ".join(f"{f.domain}.{f.name}" for f in model.functions)
        raise CheckpointError(f"{path}: the model defines ONNX functions ({names}); graphs with functions are not read")
    graph = model.graph
    ops = Counter(node.op_type for node in graph.node)
    quantized = sorted(op for op in ops if op in QUANTIZED_OPS)
    if quantized:
        found = ", ".join(f"{op} x{ops[op]}" for op in quantized)
        raise CheckpointError(f"{path}: a quantized graph ({found}); only float exports can be loaded")
    foreign = Counter(f"{n.domain}.{n.op_type}" for n in graph.node if n.domain not in STANDARD_DOMAINS)
    if foreign:
        found = ", ".join(f"{op} x{count}" for op, count in sorted(foreign.items()))
        raise CheckpointError(
            f"{path}: operators outside the ONNX standard ({found}), e.g. fused by an optimizer; "
            "export the model without graph optimization"
        )
    return graph


class Constants:
    """The graph's constant values by name: initializers, and Identity / Transpose of a constant."""

    def __init__(self, onnx, graph, path, float_dtype):
        self.onnx, self.path, self.float_dtype = onnx, path, float_dtype
        self.initializers = {t.name: t for t in graph.initializer}
        self.derived = {}  # output name -> (op, input name, perm)
        for node in graph.node:
            if node.op_type in ("Identity", "Transpose") and len(node.input) == 1 and len(node.output) == 1:
                perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
                self.derived[node.output[0]] = (node.op_type, node.input[0], perm[0] if perm else None)
        self.cache = {}

    def names(self):
        return [n for n in list(self.initializers) + list(self.derived) if self.is_constant(n)]

    def is_constant(self, name, depth=0):
        if name in self.initializers:
            return True
        return name in self.derived and depth < 16 and self.is_constant(self.derived[name][1], depth + 1)

    def value(self, name) -> np.ndarray:
        if name not in self.cache:
            if name in self.initializers:
                self.cache[name] = self._tensor(self.initializers[name])
            else:
                op, source, perm = self.derived[name]
                array = self.value(source)
                try:
                    self.cache[name] = array if op == "Identity" else np.ascontiguousarray(np.transpose(array, perm))
                except ValueError:  # a perm that does not fit the array
                    raise CheckpointError(
                        f"{self.path}: Transpose to {name!r} has perm {perm} for shape {array.shape}"
                    ) from None
        return self.cache[name]

    def _tensor(self, tensor) -> np.ndarray:
        onnx, where = self.onnx, f"{self.path}: initializer {tensor.name!r}"
        type_name = onnx.TensorProto.DataType.Name(tensor.data_type)
        if type_name not in FLOAT_TYPES:
            raise CheckpointError(f"{where} has type {type_name}; weights must be one of {', '.join(FLOAT_TYPES)}")
        if tensor.data_location == EXTERNAL:
            inline = onnx.TensorProto()
            inline.CopyFrom(tensor)
            inline.ClearField("external_data")
            inline.data_location = onnx.TensorProto.DEFAULT
            inline.raw_data = self._external_bytes(tensor, where)
            tensor = inline
        try:
            array = onnx.numpy_helper.to_array(tensor)
        except (ValueError, TypeError) as exc:  # data size does not match the dims
            raise CheckpointError(f"{where} (dims {list(tensor.dims)}): {exc}") from None
        if self.float_dtype is None and array.dtype.kind == "f":
            return array  # the stored float dtype, as asked
        return array.astype(self.float_dtype or np.float32, copy=False)  # (bfloat16 is an ml_dtypes type)

    def _external_bytes(self, tensor, where) -> bytes:
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        root = self.path.parent.resolve()
        target = (root / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(root) or not target.is_file():
            raise CheckpointError(
                f"{where}: external data {location!r} is not a file inside {root} (the ONNX file's directory)"
            )
        try:
            offset = int(info.get("offset", 0))
            size = target.stat().st_size
            length = int(info["length"]) if "length" in info else size - offset
        except ValueError:
            raise CheckpointError(f"{where}: external data offset/length are not integers: {info}") from None
        itemsize = np.dtype(self.onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        expected = int(np.prod(tensor.dims, dtype=np.int64)) * itemsize
        if offset < 0 or length != expected or offset + length > size:
            raise CheckpointError(
                f"{where}: external data {location!r} at offset {offset}, length {length} does not hold the "
                f"tensor's {expected} bytes (dims {list(tensor.dims)}; the file has {size} bytes)"
            )
        with open(target, "rb") as f:
            f.seek(offset)
            return f.read(length)


def _is_parameter(name: str) -> bool:
    """Whether a graph name is a DistilBERT parameter name (either key layout)."""
    bare = name[len(ENCODER_PREFIX):] if name.startswith(ENCODER_PREFIX) else name
    if bare in (WORD_EMBEDDINGS, POSITION_EMBEDDINGS, f"{EMBEDDINGS_NORM}.weight", f"{EMBEDDINGS_NORM}.bias"):
        return True
    match = LAYER_PARAM.match(bare)
    return (match is not None and match.group(1) in LAYER_MODULES.values()) or bare in head_tensor_names()


def _weight_through_graph(users, producers, constants, bias, path) -> np.ndarray:
    """The [out, in] weight of the Linear whose bias value is named `bias` (module docstring, step 2).

    users: the nodes that take the bias as an input; producers: {value name: the node making it}.
    """
    found = []
    for node in users:
        if node.op_type == "Add" and len(node.input) == 2:
            other = producers.get(node.input[1] if node.input[0] == bias else node.input[0])
            matmul = other is not None and other.op_type == "MatMul" and len(other.input) == 2
            if matmul and constants.is_constant(other.input[1]):
                found.append(constants.value(other.input[1]).T)  # [in, out] -> [out, in]
        elif node.op_type == "Gemm" and node.input[2:] == [bias] and constants.is_constant(node.input[1]):
            attrs = {a.name: a for a in node.attribute}
            if any(attrs[k].f != 1.0 for k in ("alpha", "beta") if k in attrs) or ("transA" in attrs and attrs["transA"].i):
                continue
            weight = constants.value(node.input[1])
            found.append(weight if "transB" in attrs and attrs["transB"].i else weight.T)
    if len(found) != 1:
        what = "no MatMul + Add or Gemm" if not found else f"{len(found)} different linears"
        raise CheckpointError(f"{path}: cannot recover the weight of bias {bias!r} through the graph ({what} use it)")
    return np.ascontiguousarray(found[0])


def _summary(graph) -> str:
    """What a graph holds, for an error: inputs, some initializer names, the most common ops."""
    inputs = ", ".join(i.name for i in graph.input) or "none"
    names = [t.name for t in graph.initializer]
    shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
    ops = ", ".join(f"{op} x{n}" for op, n in Counter(node.op_type for node in graph.node).most_common(6))
    return f"inputs {inputs}; initializers {shown or 'none'}; operators {ops or 'none'}"
