"""Reading the JSON files models ship (config.json, shard indexes, tokenizer, adapter and head configs).

    data = read_json_object(path, ConfigError)     # a dict, or `error` naming the file and what is wrong
    modules = read_json(path, ConfigError)         # any JSON value (modules.json is a list)
    header = parse_json(text, CheckpointError, "model.safetensors: header")

One place for what every such file needs, since each may come from a stranger: UTF-8, valid JSON, a
bounded size and nesting depth, and an error of the caller's type that names the file. Python's own
`json` turns some hostile inputs into exceptions no caller expects: nesting deeper than the
interpreter recurses is a RecursionError, an integer of more than 4300 digits a bare ValueError;
here both are the caller's named error. Depth is bounded well below the recursion limit because
code after parsing (copy.deepcopy of a config, repr in a message) recurses too.
"""

import gc
import json
import re
from pathlib import Path

import numpy as np

MAX_DEPTH = 64  # real files nest at most ~6 deep (tokenizer.json); 64 leaves room and stays far from recursion limits
# Real configs are a few kB and WordPiece tokenizer.json files at most ~10 MB. Parsed JSON costs up
# to ~25x its size (16 MiB of "[[],[],...]" peaked at 390 MB under tracemalloc), so the bound is a
# bound on memory too.
MAX_JSON_BYTES = 16 * 1024 * 1024


def parse_json(text, error, where, *, object_pairs_hook=None):
    """The JSON value of `text` (str or UTF-8 bytes); `error(f"{where}: ...")` when it is not valid JSON
    or nests deeper than MAX_DEPTH (checked before parsing, so the parser never recurses that deep)."""
    try:
        raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
        if nesting_depth(raw) > MAX_DEPTH:
            raise error(f"{where}: JSON nested deeper than {MAX_DEPTH} levels")
        data = _loads(raw.decode("utf-8"), object_pairs_hook)
    except UnicodeError as exc:
        raise error(f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:
        if isinstance(exc, error):
            raise
        # json's int() of a number with more than sys.get_int_max_str_digits() (4300) digits
        raise error(f"{where}: not valid JSON: {str(exc).split(';')[0][:200]}") from None
    return data


# A JSON string, escapes included. Possessive (no backtracking), and a run of plain characters is
# taken at once: 16 ms for all-MiniLM-L6-v2's tokenizer.json (0.47 MB, 30k strings), 6x less than
# one character at a time.
def _loads(text, object_pairs_hook):
    """json.loads with the cyclic garbage collector paused: it would run again and again over the
    millions of containers a hostile file can hold (16 MiB of "[[],[],...]": 6.2 s, 1.4 s paused)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    finally:
        if paused:
            gc.enable()


_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_depth(raw: bytes) -> int:
    """How deep the arrays and objects of the JSON text `raw` nest (exact for valid JSON).

    Strings are cut out first (they may hold brackets), then the brackets left are counted a
    MiB at a time with NumPy: 0.4 s for 16 MiB of brackets, where walking the parsed value in
    Python took 20 s for 16 MiB of "[[],[],...]".
    """
    brackets = np.frombuffer(_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS), np.uint8)
    depth = deepest = 0
    for start in range(0, brackets.size, 1 << 20):
        chunk = brackets[start : start + (1 << 20)]
        steps = np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1).astype(np.int32)
        levels = np.cumsum(steps) + depth
        deepest = max(deepest, int(levels.max()))
        depth = int(levels[-1])
    return deepest


def read_json(path, error, missing=None, max_bytes=MAX_JSON_BYTES):
    """The JSON value in file `path`. error: the MinidistilError subclass to raise; missing: its message
    when the file does not exist (default: "no such file"); a file over `max_bytes` is refused unread."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(missing or f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise error(f"{path}: larger than {max_bytes} bytes, which no real file of this kind is")
    if not raw.strip():  # a failed copy or download: say so, rather than the parser's "Expecting value"
        raise error(f"{path} is empty: it must hold JSON (copy or download it again)")
    return parse_json(raw, error, str(path))


def read_json_object(path, error, missing=None, max_bytes=MAX_JSON_BYTES):
    """The JSON object in file `path` (see read_json); anything but an object at the top is `error`."""
    data = read_json(path, error, missing, max_bytes)
    if not isinstance(data, dict):
        raise error(f"{path}: must hold a JSON object, got {_json_kind(data)}")
    return data


def _json_kind(value):
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
