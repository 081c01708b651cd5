"""Reading the JSON files models ship (config.json, shard indexes, adapter and head configs).

    data = read_json_object(path, ConfigError)     # a dict, or `error` naming the file and what is wrong

One place for what every such file needs: UTF-8, valid JSON, an object at the top, and an error
of the caller's type that names the file.
"""

import json
from pathlib import Path


def check_not_empty(text, path, error):
    """`text`, the content of `path`; an empty file (a failed copy or download) is `error` saying so,
    rather than the parser's "Expecting value: line 1 column 1"."""
    if not text.strip():
        raise error(f"{path} is empty: it must hold a JSON object (copy or download it again)")
    return text


def read_json_object(path, error, missing=None):
    """The JSON object in `path`. error: the MinidistilError subclass to raise; missing: its message
    when the file does not exist (default: "no such file")."""
    path = Path(path)
    try:
        data = json.loads(check_not_empty(path.read_text(encoding="utf-8"), path, error))
    except FileNotFoundError:
        raise error(missing or f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{path}: must hold a JSON object")
    return data
