"""The amplification attacks of issue 13 as files: small on disk, huge for a loader that trusts them.

Each builder writes one hostile model file (or directory) under `directory` and returns the path
to load; `AMPLIFICATIONS` maps a name to (builder, loader). tests/test_loader_attacks.py loads each
in-process (to check the error and the memory it cost) and, all together, in a subprocess under an
address-space limit (to check that none ends in a MemoryError or a kill).

    path = inflate_bomb(tmp_path)            # 1 MB on disk, a storage that inflates to 1 GiB
    read_torch_bin(path)                     # CheckpointError, before a byte is inflated
"""

import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from torch_pickles import state, state_of, tensor, tensor_again, write_bin

TINY_CHECKPOINT = Path(__file__).parent / "golden" / "checkpoint" / "tiny_mlm_safetensors"


def deflated_repeats(block, times):
    """A raw deflate stream that inflates to `block` repeated `times` times, made in milliseconds:
    the block is compressed once, after a full flush (which resets the compressor), and repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    return compressed * times + c.flush()


def with_deflated_record(path, record, stream, nbytes):
    """Turn stored record `record` of the archive at `path`, whose bytes are `stream` (a raw deflate
    stream of `nbytes`), into a deflated record, by rewriting its two headers.

    zipfile would take seconds to compress a GiB. The CRC-32 is left 0: computing it takes 1.8 s
    per GiB, and a loader that trusts the sizes inflates everything before zipfile compares it.
    """
    data = bytearray(Path(path).read_bytes())
    name = record.encode()
    local = _header(data, b"PK\x03\x04", 30, name)
    central = _header(data, b"PK\x01\x02", 46, name)
    for method_at, sizes_at in ((local + 8, local + 14), (central + 10, central + 16)):
        struct.pack_into("<H", data, method_at, zipfile.ZIP_DEFLATED)
        struct.pack_into("<III", data, sizes_at, 0, len(stream), nbytes)  # CRC-32, compressed, inflated size
    Path(path).write_bytes(bytes(data))
    return path


def deflated_zeros_bin(path, pkl, nbytes):
    """An archive whose storage "0" is `nbytes` (a multiple of 1 MiB) of zeros, deflated."""
    stream = deflated_repeats(bytes(1 << 20), nbytes >> 20)
    return with_deflated_record(write_bin(path, pkl, {"0": stream}), "archive/data/0", stream, nbytes)


def _header(data, signature, name_at, name):
    """The offset of the zip header with this signature whose file name (at +name_at) is `name`."""
    at = data.index(signature)
    while data[at + name_at : at + name_at + len(name)] != name:
        at = data.index(signature, at + 4)
    return at


# --------------------------------------------------------------------------------------- .bin files
def views_bomb(directory):
    """~170 kB: one 64 MiB storage of zeros, deflated to 66 kB, and 1000 transposed views of it.
    A reader that copies each non-contiguous view needs 1000 x 64 MiB = 62.5 GiB."""
    n = 4096
    views = [(f"w{i}", tensor_again(0, size=(n, n), stride=(1, n))) for i in range(1, 1000)]
    pkl = state_of([("w0", tensor(numel=n * n, size=(n, n), stride=(1, n), memo=0)), *views])
    return deflated_zeros_bin(Path(directory) / "views.bin", pkl, 4 * n * n)


def shared_views(directory):
    """1 MB: one stored 1 MiB storage of real weights and 1000 transposed views of it: every view is
    free to read, but a model built from them copies each (1000 MiB)."""
    m = 512
    views = [(f"w{i}", tensor_again(0, size=(m, m), stride=(1, m))) for i in range(1, 1000)]
    pkl = state_of([("w0", tensor(numel=m * m, size=(m, m), stride=(1, m), memo=0)), *views])
    weights = np.random.default_rng(0).standard_normal(m * m).astype("<f4").tobytes()
    return write_bin(Path(directory) / "shared.bin", pkl, {"0": weights})


def inflate_bomb(directory):
    """1 MB: one storage that inflates to 1 GiB (read whole, then sliced: 2 GiB, by the old reader)."""
    numel = 1 << 28
    pkl = state(w=tensor(numel=numel, size=(numel,), stride=(1,)))
    return deflated_zeros_bin(Path(directory) / "inflate.bin", pkl, 4 * numel)


def memo_bomb(directory):
    """10 bytes of pickle: a PUT to memo index 2^32 - 16 makes CPython's unpickler allocate and zero a
    memo table of 2^33 pointers (64 GiB)."""
    return write_bin(Path(directory) / "memo.bin", b"\x80\x02N" + b"r" + struct.pack("<I", 0xFFFFFFF0) + b".")


def bytes8_bomb(directory):
    """A BINBYTES8 that announces 2^40 bytes: the unpickler allocates them before reading."""
    return write_bin(Path(directory) / "bytes8.bin", b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc.")


def pickle_bomb(directory):
    """A 130 kB archive whose data.pkl inflates to 128 MiB (of "push None, pop it")."""
    stream = deflated_repeats(b"N0" * (1 << 19), 128)
    path = write_bin(Path(directory) / "pickle.bin", stream)
    return with_deflated_record(path, "archive/data.pkl", stream, 128 << 20)


# ---------------------------------------------------------------------------------- config.json
def config_beside_tiny_weights(directory, name, **fields):
    """A copy of the tiny MLM checkpoint whose config.json has `fields` changed."""
    folder = Path(directory) / name
    shutil.copytree(TINY_CHECKPOINT, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **fields}))
    return folder


def layers_bomb(directory):
    """n_layers 10^9: 1.6 * 10^10 tensor names to build, by a loader that builds them first."""
    return config_beside_tiny_weights(directory, "layers", n_layers=10**9)


def labels_bomb(directory):
    """num_labels 10^8: a hundred million LABEL_i strings, by a loader that builds them first."""
    return config_beside_tiny_weights(directory, "labels", num_labels=10**8)


# ------------------------------------------------------------------------------------- safetensors
def header_bomb(directory):
    """A 16 MiB safetensors header of 5.6 million empty lists: ~400 MB once parsed, then refused."""
    blob = b"[" + b",".join([b"[]"] * ((16 * 2**20 - 2) // 3)) + b"]"
    path = Path(directory) / "header.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    return path


def deep_header(directory):
    """A safetensors header nested 100,000 lists deep (RecursionError in json, by default)."""
    blob = b"[" * 100_000 + b"]" * 100_000
    path = Path(directory) / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    return path


def _load_bin(path):
    from minidistil.checkpoints.torch_bin import read_torch_bin

    return read_torch_bin(path)


def _load_model(path):
    from minidistil import DistilBertForMaskedLM

    return DistilBertForMaskedLM.from_pretrained(path, backend="numpy")


def _load_safetensors(path):
    from minidistil.checkpoints.safetensors_io import read_safetensors

    return read_safetensors(path)


# name -> (builder, loader, what a load that trusts the file allocates, the most a load may take in MiB:
# the interpreter with NumPy is ~27 MiB resident; parsing a full 16 MiB header is what MAX_JSON_BYTES allows)
AMPLIFICATIONS = {
    "1000 transposed views of one deflated storage": (views_bomb, _load_bin, "62.5 GiB", 64),
    "1000 views of one stored storage": (shared_views, _load_bin, "1000 MiB (a copy per view)", 64),
    "deflated storage inflating to 1 GiB": (inflate_bomb, _load_bin, "2 GiB", 64),
    "pickle memo index 2^32": (memo_bomb, _load_bin, "64 GiB", 64),
    "pickle BINBYTES8 of 2^40 bytes": (bytes8_bomb, _load_bin, "1 TiB", 64),
    "data.pkl inflating to 128 MiB": (pickle_bomb, _load_bin, "128 MiB + 67 million pushes", 64),
    "config n_layers 10^9": (layers_bomb, _load_model, "1.6 * 10^10 tensor names", 64),
    "config num_labels 10^8": (labels_bomb, _load_model, "10^8 labels", 64),
    "16 MiB safetensors header of empty lists": (header_bomb, _load_safetensors, "~0.5 GiB (bounded)", 640),
    "safetensors header nested 100,000 deep": (deep_header, _load_safetensors, "a RecursionError", 64),
}
