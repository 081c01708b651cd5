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

from ..errors import TokenizerError, shown
from ..jsonfiles import read_json_object

SPECIAL_TOKEN_ATTRIBUTES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")



def special_token_text(value):
    """A special token given as a string or as an AddedToken-like dict/object.

        >>> special_token_text({"content": "[MASK]", "lstrip": True}), special_token_text("[SEP]")
        ('[MASK]', '[SEP]')
    """
    if value is None or isinstance(value, str):
        return value
    content = value.get("content") if isinstance(value, dict) else getattr(value, "content", None)
    if isinstance(content, str):
        return content
    raise TokenizerError(f"a special token must be a string or have a string 'content', got {shown(value)}")


def special_token_list(value, name=None):
    """The texts of a list of special tokens (None: none); name: the argument, for the message. A
    string is refused rather than read as a list of its characters, each of which would become a
    special token.

        >>> special_token_list(["<a>", {"content": "<b>"}])
        ['<a>', '<b>']
    """
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise TokenizerError(f"{name + ' ' if name else ''}must be a list of special tokens, got {shown(value)}")
    return [special_token_text(t) for t in value]


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
    and special_tokens_map.json (both optional; the config wins where they overlap).

    Every value taken from these files is checked here, so that a bad one is a TokenizerError
    naming the file and the field rather than a TypeError from deep inside the tokenizer.
    """
    path = Path(directory)
    config, origin = {}, {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        f = path / name
        if f.exists():
            data = read_json_object(f, TokenizerError)
            config.update(data)
            origin.update(dict.fromkeys(data, f))
    init = {}
    for key, check in _CONFIG_CHECKS.items():
        if key in config:
            try:
                init[key] = check(config[key])
            except TokenizerError as exc:
                raise TokenizerError(f"{origin[key]}: {key}: {exc}") from None
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


def _flag(value):
    if not isinstance(value, bool):
        raise TokenizerError(f"must be true or false, got {shown(value)}")
    return value


def _optional_flag(value):
    return None if value is None else _flag(value)


def _side(value):
    if value not in ("right", "left"):
        raise TokenizerError(f"must be 'right' or 'left', got {shown(value)}")
    return value


def _max_length(value):
    """A non-negative integer (some tools write 1e30, "no limit", as a float), or null."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if not _is_int(value) or value < 0:
        raise TokenizerError(f"must be a non-negative integer, got {shown(value)}")
    return value


def _string_list(value):
    if value is not None and not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
        raise TokenizerError(f"must be a list of strings, got {shown(value)}")
    return value


# What tokenizer_config.json and special_tokens_map.json may set, and how each value is checked
# (and normalised); other keys are ignored.
_CONFIG_CHECKS = {
    "do_lower_case": _flag,
    "strip_accents": _optional_flag,
    "tokenize_chinese_chars": _flag,
    "never_split": _string_list,
    "model_max_length": _max_length,
    "padding_side": _side,
    "truncation_side": _side,
    "clean_up_tokenization_spaces": _flag,
    "additional_special_tokens": special_token_list,
    **dict.fromkeys(SPECIAL_TOKEN_ATTRIBUTES, special_token_text),
}


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
    added tokens), unk_token and max_input_chars_per_word.

    The ids, of the vocab and of the added tokens, must number the tokens 0..n-1 with no id twice,
    as in a tokenizer the reference saved: an id outside the vocabulary would index past the
    model's embeddings, and one id for two tokens makes decoding ambiguous."""
    data = read_json_object(path, TokenizerError)
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise TokenizerError(f"{path}: model is not a WordPiece model with a vocab")
    if model.get("continuing_subword_prefix", "##") != "##":
        raise TokenizerError(f"{path}: only the '##' continuing-subword prefix is supported")
    vocab = dict(model["vocab"])
    added = data.get("added_tokens") or []
    if not isinstance(added, list):
        raise TokenizerError(f"{path}: added_tokens must be a list, got {shown(added)}")
    for i, token in enumerate(added):
        if not (isinstance(token, dict) and isinstance(token.get("content"), str) and "id" in token):
            raise TokenizerError(
                f"{path}: added_tokens[{i}] must be an object with a string 'content' and an 'id', got {shown(token)}"
            )
        vocab.setdefault(token["content"], token["id"])
    _check_ids(vocab, path)
    unk = model.get("unk_token", "[UNK]")
    if not isinstance(unk, str):
        raise TokenizerError(f"{path}: model.unk_token must be a string, got {shown(unk)}")
    max_chars = model.get("max_input_chars_per_word", 100)
    if not _is_int(max_chars) or max_chars < 1:
        raise TokenizerError(f"{path}: model.max_input_chars_per_word must be a positive integer, got {shown(max_chars)}")
    # The normaliser settings come from tokenizer_config.json (or the defaults), not from here: the
    # reference overrides tokenizer.json's BertNormalizer with them.
    return {"vocab": vocab, "unk_token": unk, "max_input_chars_per_word": max_chars}


def _check_ids(vocab, path):
    """token -> id must number the n tokens 0..n-1, each id once."""
    n = len(vocab)
    owner = {}
    for token, i in vocab.items():
        if not _is_int(i) or not 0 <= i < n:
            raise TokenizerError(f"{path}: token {shown(token)} has id {shown(i)}, outside the vocabulary [0, {n})")
        if i in owner:
            raise TokenizerError(f"{path}: tokens {shown(owner[i])} and {shown(token)} both have id {i}")
        owner[i] = token


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
