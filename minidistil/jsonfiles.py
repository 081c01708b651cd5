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

import json
from pathlib import Path

MAX_DEPTH = 64  # real files nest at most ~6 deep (tokenizer.json); 64 leaves room and stays far from recursion limits
# Real configs are a few kB and WordPiece tokenizer.json files at most ~10 MB. Parsed JSON costs up
# to ~25x its size (16 MiB of "[[],[],...]" peaked at 390 MB under tracemalloc), so the bound is a
# bound on memory too.
MAX_JSON_BYTES = 16 * 1024 * 1024


def parse_json(text, error, where, *, object_pairs_hook=None):
    """The JSON value of `text` (str or UTF-8 bytes); `error(f"{where}: ...")` when it is not valid JSON
    or nests deeper than MAX_DEPTH."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")  # json.loads would also guess UTF-16/32 from bytes; model files are UTF-8
        data = json.loads(text, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise error(f"{where}: JSON nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # json's int() of a number with more than sys.get_int_max_str_digits() digits
        raise error(f"{where}: not valid JSON: {str(exc)[:200]}") from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise error(f"{where}: JSON nested deeper than {MAX_DEPTH} levels")
    return data


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
    return parse_json(raw, error, str(path))


def read_json_object(path, error, missing=None, max_bytes=MAX_JSON_BYTES):
    """The JSON object in file `path` (see read_json); anything but an object at the top is `error`."""
    data = read_json(path, error, missing, max_bytes)
    if not isinstance(data, dict):
        raise error(f"{path}: must hold a JSON object, got {_json_kind(data)}")
    return data


def _depth_exceeds(data, limit):
    """True when containers nest more than `limit` deep (iterative: a deep value cannot exhaust the stack)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _json_kind(value):
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
