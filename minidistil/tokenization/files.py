"""A tokenizer's files: vocab.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json.

Reading gives the tokenizer's constructor arguments; writing takes them back, in the layout the
reference reads (so `transformers.AutoTokenizer.from_pretrained` loads what `save_pretrained` wrote).

    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "vocab.txt").write_text("[PAD]\\n[UNK]\\nhello\\n", encoding="utf-8")
    >>> _ = (d / "tokenizer_config.json").write_text('{"do_lower_case": false}', encoding="utf-8")
    >>> read_pretrained(d) == {"do_lower_case": False, "vocab_file": str(d / "vocab.txt"),
    ...                        "clean_up_tokenization_spaces": True}
    True
    >>> load_vocab(d / "vocab.txt")
    {'[PAD]': 0, '[UNK]': 1, 'hello': 2}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import TokenizerError

SPECIAL_TOKEN_ATTRIBUTES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

# What tokenizer_config.json and special_tokens_map.json may set; other keys are ignored.
_CONFIG_KEYS = (
    "do_lower_case", "strip_accents", "tokenize_chinese_chars", "never_split", "model_max_length",
    "padding_side", "truncation_side", "clean_up_tokenization_spaces", "additional_special_tokens",
    *SPECIAL_TOKEN_ATTRIBUTES,
)


def special_token_text(value):
    """A special token given as a string or as an AddedToken-like dict/object.

        >>> special_token_text({"content": "[MASK]", "lstrip": True}), special_token_text("[SEP]")
        ('[MASK]', '[SEP]')
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "content" in value:
        return value["content"]
    content = getattr(value, "content", None)
    if isinstance(content, str):
        return content
    raise TypeError(f"a special token must be a string, got {type(value).__name__}")


# ----------------------------------------------------------------------------------------------
# vocab.txt


def load_vocab(path):
    """token -> id from a vocab.txt (one token per line, id = line number, as the reference).

    Raises TokenizerError naming the file (and the line, for undecodable bytes) when it cannot be read.
    A token that appears twice keeps its last id, as the reference's loader does.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise TokenizerError(f"vocab file not found: {path}") from None
    except OSError as e:
        raise TokenizerError(f"cannot read vocab file {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise TokenizerError(
            f"{path}, line {line}: not valid UTF-8 ({e.reason}); a vocab file holds one UTF-8 token per line"
        ) from None
    # Lines as Python's text-mode readlines() sees them (\n, \r\n and \r end a line), like the reference.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    vocab = {}
    for i, token in enumerate(lines):
        vocab[token] = i
    if not vocab:
        raise TokenizerError(f"vocab file {path} is empty")
    return vocab


def write_vocab(path, vocab):
    """vocab.txt of token -> id: the tokens in id order, which must be 0, 1, 2, ... without gaps."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        expected = 0
        for token, i in sorted(vocab.items(), key=lambda kv: kv[1]):
            if i != expected:
                raise TokenizerError(f"cannot write vocab.txt: ids are not consecutive (token {token!r} has id {i})")
            f.write(token + "\n")
            expected += 1


# ----------------------------------------------------------------------------------------------
# a tokenizer directory


def read_pretrained(directory):
    """Constructor arguments from a directory with vocab.txt (or tokenizer.json), tokenizer_config.json
    and special_tokens_map.json (both optional; the config wins where they overlap)."""
    path = Path(directory)
    config = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        f = path / name
        if f.exists():
            config.update(_read_json(f))
    init = {key: config[key] for key in _CONFIG_KEYS if key in config}
    if "model_max_length" in init and init["model_max_length"] is not None:
        init["model_max_length"] = int(init["model_max_length"])
    if isinstance(init.get("additional_special_tokens"), list):
        init["additional_special_tokens"] = [special_token_text(t) for t in init["additional_special_tokens"]]
    vocab_file = path / "vocab.txt"
    tok_json = path / "tokenizer.json"
    if vocab_file.exists():
        init["vocab_file"] = str(vocab_file)
    elif tok_json.exists():
        init.update(_from_tokenizer_json(tok_json))
    else:
        raise TokenizerError(f"no vocab.txt or tokenizer.json in {path}")
    # As the reference: built from tokenizer.json, decode() does not clean up spaces unless the
    # config says so; built from vocab.txt (through its slow twin), it does.
    init.setdefault("clean_up_tokenization_spaces", not tok_json.exists())
    return init


def write_pretrained(directory, vocab, config, special_ids, max_input_chars_per_word):
    """Write vocab.txt, tokenizer_config.json (`config`: the constructor arguments and
    tokenizer_class), special_tokens_map.json and tokenizer.json; return their paths."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise TokenizerError(f"cannot save into {d}: it is a file, not a directory")
    d.mkdir(parents=True, exist_ok=True)
    write_vocab(d / "vocab.txt", vocab)
    special_map = {k: config[k] for k in (*SPECIAL_TOKEN_ATTRIBUTES, "additional_special_tokens") if k in config}
    _write_json(d / "tokenizer_config.json", config)
    _write_json(d / "special_tokens_map.json", special_map)
    _write_json(d / "tokenizer.json", tokenizer_json(config, vocab, special_ids, max_input_chars_per_word))
    return (
        str(d / "tokenizer_config.json"),
        str(d / "special_tokens_map.json"),
        str(d / "vocab.txt"),
        str(d / "tokenizer.json"),
    )


# ----------------------------------------------------------------------------------------------
# tokenizer.json


def tokenizer_json(config, vocab, special_ids, max_input_chars_per_word):
    """The reference's tokenizer.json of a BERT WordPiece tokenizer with these settings
    (`special_ids`: special token -> id, written as the added tokens)."""
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for t, i in sorted(special_ids.items(), key=lambda kv: kv[1])
    ]
    cls_, sep = config["cls_token"], config["sep_token"]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {
            "type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": config["tokenize_chinese_chars"],
            "strip_accents": config["strip_accents"], "lowercase": config["do_lower_case"],
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": cls_, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": sep, "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": cls_, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": sep, "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": sep, "type_id": 1}}],
            "special_tokens": {
                t: {"id": t, "ids": [special_ids[t]], "tokens": [t]} for t in (cls_, sep)
            },
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece", "unk_token": config["unk_token"], "continuing_subword_prefix": "##",
            "max_input_chars_per_word": max_input_chars_per_word, "vocab": vocab,
        },
    }


def _from_tokenizer_json(path):
    """Constructor arguments from a tokenizer.json of a BERT WordPiece tokenizer: its vocab (with the
    added tokens), unk_token and max_input_chars_per_word."""
    data = _read_json(path)
    model = data.get("model") or {}
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise TokenizerError(f"{path}: model is not a WordPiece model with a vocab")
    if model.get("continuing_subword_prefix", "##") != "##":
        raise TokenizerError(f"{path}: only the '##' continuing-subword prefix is supported")
    vocab = {str(t): int(i) for t, i in model["vocab"].items()}
    for added in data.get("added_tokens") or []:
        vocab.setdefault(added["content"], int(added["id"]))
    # The normaliser settings come from tokenizer_config.json (or the defaults), not from here: the
    # reference overrides tokenizer.json's BertNormalizer with them.
    return {"vocab": vocab, "unk_token": model.get("unk_token", "[UNK]"),
            "max_input_chars_per_word": model.get("max_input_chars_per_word", 100)}


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{path}, line {e.lineno}: invalid JSON ({e.msg})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TokenizerError(f"cannot read {path}: {e}") from None


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
