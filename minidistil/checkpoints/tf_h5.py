"""tf_model.h5: the Keras HDF5 weights file that transformers' TF classes write (`save_pretrained`).

Layout (Keras `save_weights` in HDF5):

    /                      attrs: layer_names = ["distilbert", "vocab_transform", ...]
    /<layer>               attrs: weight_names = ["tf_distil_bert_for_masked_lm/distilbert/.../kernel:0", ...]
    /<layer>/<weight name> a dataset: the variable's value (kernels [in, out])

A weight name starts with the model's name scope, which transformers drops when it loads
(`tf_distil_bert_for_masked_lm/`); the rest is the module path (framework_names.py renames it).
A weight shared by two layers (the MLM projector reuses the word embeddings) is listed by both
and read once.

HDF5 is a rich format and this reads only its plain part, refusing the rest before any data is
read: every object must be reached by hard links (no soft or external links: an external link
opens another file), every dataset must hold plain numbers (no object or region references,
strings, compound or variable-length types), be stored inside this file (no external or virtual
storage) without filters (no compression: a filter can expand data without bound, and an
unknown filter makes HDF5 load a plugin library), and take exactly its size on disk. Needs h5py:
`pip install "minidistil[tf]"`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..extras import import_extra
from .framework_names import schema_tensor

TF_WEIGHTS_NAME = "tf_model.h5"
MAX_DEPTH = 32  # TF files nest 8 deep; a deeper (or cyclic) hierarchy is not a weights file
MAX_OBJECTS = 100_000
VARIABLE_SUFFIX = re.compile(r":\d+$")  # TF variable names end in ":0"


def read_tf_h5(path, *, float_dtype=np.float32) -> dict[str, np.ndarray]:
    """Every weight of a tf_model.h5, renamed into schema.py's names (kernels transposed).

    float tensors become `float_dtype` (None keeps the stored dtype).
    """
    path = Path(path)
    h5py = import_extra("h5py", "tf", f"reading {path.name} (TensorFlow weights)")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:  # not HDF5, truncated, unreadable
        raise CheckpointError(f"{path}: not a readable HDF5 file ({exc})") from None
    with h5:
        datasets = _plain_datasets(h5py, h5, path)
        if "layer_names" not in h5.attrs:
            raise CheckpointError(
                f"{path}: no 'layer_names' attribute at the root: not Keras weights saved by save_weights "
                f"(found top-level entries {sorted(h5.keys())[:8]})"
            )
        state, seen = {}, set()
        for layer in _string_list(h5.attrs, "layer_names", f"{path}: /"):
            group = h5.get(layer, getlink=True)
            if not isinstance(group, h5py.HardLink) or not isinstance(h5[layer], h5py.Group):
                raise CheckpointError(f"{path}: layer {layer!r} listed in layer_names is not a group of the file")
            for weight_name in _string_list(h5[layer].attrs, "weight_names", f"{path}: /{layer}"):
                if weight_name in seen:
                    continue  # the same variable, listed again by a layer that shares it
                seen.add(weight_name)
                dataset = datasets.get(f"{layer}/{weight_name}")
                if dataset is None:
                    raise CheckpointError(f"{path}: weight {weight_name!r} of layer {layer!r} has no dataset")
                parts = VARIABLE_SUFFIX.sub("", weight_name).split("/")[1:]  # drop the model's name scope
                name, array = schema_tensor(parts, _read(dataset, float_dtype), f"{path}: {weight_name}")
                if name in state:
                    raise CheckpointError(f"{path}: two weights map to {name!r} (the second is {weight_name!r})")
                state[name] = array
    return state


def _plain_datasets(h5py, h5, path) -> dict:
    """{relative path: dataset} of the whole file, after checking every object (module docstring)."""
    found = {}
    count = 0

    def visit(group, prefix, depth):
        nonlocal count
        if depth > MAX_DEPTH:
            raise CheckpointError(f"{path}: groups nest deeper than {MAX_DEPTH} levels at /{prefix}")
        for key in group.keys():
            count += 1
            if count > MAX_OBJECTS:
                raise CheckpointError(f"{path}: more than {MAX_OBJECTS} objects: not a model weights file")
            where = f"{prefix}{key}"
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                kind = type(link).__name__
                raise CheckpointError(f"{path}: /{where} is a {kind}; only plain (hard-linked) objects are read")
            obj = group[key]
            if isinstance(obj, h5py.Group):
                visit(obj, where + "/", depth + 1)
            elif isinstance(obj, h5py.Dataset):
                _check_dataset(obj, f"{path}: /{where}")
                found[where] = obj
            else:
                raise CheckpointError(f"{path}: /{where} is a {type(obj).__name__}, neither a group nor a dataset")

    visit(h5, "", 0)
    return found


def _check_dataset(dataset, where):
    dtype = dataset.dtype
    if dtype.kind not in "fiu" or dtype.fields is not None or dtype.subdtype is not None:
        kind = "object references or variable-length data" if dtype.kind == "O" else f"dtype {dtype}"
        raise CheckpointError(f"{where}: holds {kind}; only plain numeric datasets are read")
    if dataset.is_virtual or dataset.external:
        raise CheckpointError(f"{where}: its data is stored outside this file (external or virtual storage)")
    if dataset.id.get_create_plist().get_nfilters():
        raise CheckpointError(f"{where}: compressed or filtered storage is not read (Keras writes plain datasets)")
    expected = int(np.prod(dataset.shape, dtype=np.int64)) * dtype.itemsize
    stored = dataset.id.get_storage_size()
    if stored != expected:
        raise CheckpointError(f"{where}: shape {dataset.shape} needs {expected} bytes but {stored} are stored")


def _read(dataset, float_dtype) -> np.ndarray:
    array = np.asarray(dataset[()])
    if array.dtype.kind == "f" and float_dtype is not None:
        return array.astype(float_dtype, copy=False)
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _string_list(attrs, key, where) -> list[str]:
    """A Keras name-list attribute as str: an array of str or bytes (an empty list may have any dtype)."""
    if key not in attrs:
        raise CheckpointError(f"{where} has no {key!r} attribute")
    values = np.asarray(attrs[key])
    if values.size == 0:
        return []
    names = []
    for value in values.reshape(-1):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise CheckpointError(f"{where}: attribute {key!r} holds a name that is not UTF-8: {value[:40]!r}") from None
        if not isinstance(value, str):
            raise CheckpointError(f"{where}: attribute {key!r} holds {type(value).__name__}, expected names")
        names.append(value)
    return names
