"""Hand-assembled torch `.bin` files, so no test ever pickles or runs anything dangerous.

The pickles are written opcode by opcode (protocol 2), the archives with zipfile:

    pkl = state(w=tensor(size=(2, 2), stride=(1, 2)))            # {"w": a transposed view of storage "0"}
    write_bin(path, pkl, {"0": np.arange(4, dtype="<f4").tobytes()}, compress={"0"})
"""

import struct
import zipfile

import numpy as np


def global_(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def str_(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def int_(i):
    return b"J" + struct.pack("<i", i)


def tuple_(*items):
    return b"(" + b"".join(items) + b"t"


def tensor(key="0", numel=4, offset=0, size=(2, 2), stride=(2, 1), storage="FloatStorage", memo=None):
    """A _rebuild_tensor_v2 call on storage `key`. memo: an index to remember the storage under
    (BINPUT), so that later tensors can refer to it with `tensor_again` in two bytes."""
    storage_ref = tuple_(str_("storage"), global_("torch", storage), str_(key), str_("cpu"), int_(numel)) + b"Q"
    if memo is not None:
        storage_ref += b"q" + bytes([memo])
    return _rebuild(storage_ref, offset, size, stride)


def tensor_again(memo, offset=0, size=(2, 2), stride=(2, 1)):
    """A tensor on the storage remembered under `memo` (see `tensor`)."""
    return _rebuild(b"h" + bytes([memo]), offset, size, stride)


def _rebuild(storage_ref, offset, size, stride):
    args = tuple_(storage_ref, int_(offset), tuple_(*map(int_, size)), tuple_(*map(int_, stride)), b"\x89",
                  global_("collections", "OrderedDict") + b")R")
    return global_("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def state(**entries):
    return state_of(entries.items())


def state_of(entries):
    """An OrderedDict of (name, pickled value) pairs, the top object of a state-dict pickle."""
    body = b"".join(str_(k) + v + b"s" for k, v in entries)
    return b"\x80\x02" + global_("collections", "OrderedDict") + b")R" + body + b"."


def write_bin(path, pkl, storages=None, compress=(), byteorder="little"):
    """An archive as torch.save lays it out; the records named in `compress` (storage keys, or
    "data.pkl") are deflated instead of stored."""
    storages = {"0": np.arange(4, dtype="<f4").tobytes()} if storages is None else storages
    deflate = lambda key: zipfile.ZIP_DEFLATED if key in compress else zipfile.ZIP_STORED  # noqa: E731
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("archive/data.pkl"), pkl, deflate("data.pkl"))
        zf.writestr("archive/byteorder", byteorder)
        for key, data in storages.items():
            zf.writestr(zipfile.ZipInfo(f"archive/data/{key}"), data, deflate(key))
    return path
