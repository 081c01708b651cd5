"""DistilBERT's WordPiece tokenizer, written by hand to match the reference fast tokenizer exactly.

One engine under both reference names (`DistilBertTokenizer`, `DistilBertTokenizerFast`). Per text:

    split out special-token strings ("[MASK]", ...; matched on the original text, case-sensitive)
    → normalise each other piece (normalizer.py: clean, CJK spacing, accents, lowercase; with an
      alignment back to the original characters) → split into words → WordPiece each word
      (wordpiece.py, cached) → Encoding with character offsets into the original string
    → truncation with stride/overflow windows → [CLS] A [SEP] (B [SEP]) → padding     (encoding.py)

Where the slow (Python) and fast (Rust) reference tokenizers disagree, this follows the fast one:
no NFC first, accents stripped before lowercasing, CJK range from U+2B920, longest_first split,
overflow windows of pairs, `never_split` has no effect, special tokens matched before normalisation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .encoding import BatchEncoding, Encoding, merge, truncate_pair
from .errors import TokenizerError
from .normalizer import BertNormalizer
from .wordpiece import WordPiece, load_vocab

VERY_LARGE_INTEGER = int(1e30)  # model_max_length when none is known, as the reference
LARGE_INTEGER = int(1e20)

_SPECIAL_ATTRIBUTES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_TRUNCATION = ("longest_first", "only_first", "only_second", "do_not_truncate")
_PADDING = ("longest", "max_length", "do_not_pad")


def _token_str(value):
    """A special token given as a string or as an AddedToken-like dict/object."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "content" in value:
        return value["content"]
    content = getattr(value, "content", None)
    if isinstance(content, str):
        return content
    raise TypeError(f"a special token must be a string, got {type(value).__name__}")


def _enum_value(value):
    return getattr(value, "value", value)


def clean_up_tokenization(text):
    """The reference's clean-up of spaces before punctuation and in English contractions."""
    return (
        text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


def _decoder_cleanup(token):
    """The WordPiece decoder's own clean-up, applied to each token (with its leading space): the same
    replacements plus " do not" -> " don't" (no replacement can create or break another's match)."""
    return clean_up_tokenization(token).replace(" do not", " don't")


class DistilBertTokenizer:
    """WordPiece tokenizer of DistilBERT/BERT, identical in output to transformers' DistilBertTokenizerFast."""

    vocab_files_names = {"vocab_file": "vocab.txt"}
    model_input_names = ["input_ids", "attention_mask"]
    is_fast = True

    def __init__(
        self,
        vocab_file=None,
        do_lower_case=True,
        never_split=None,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        tokenize_chinese_chars=True,
        strip_accents=None,
        model_max_length=None,
        padding_side="right",
        truncation_side="right",
        clean_up_tokenization_spaces=True,
        max_input_chars_per_word=100,
        additional_special_tokens=None,
        vocab=None,
        **kwargs,
    ):
        if vocab is None:
            if vocab_file is None:
                raise TokenizerError("a vocab_file (vocab.txt) or a vocab dict is needed")
            vocab = load_vocab(vocab_file)
        elif not isinstance(vocab, dict) or not vocab:
            raise TokenizerError("vocab must be a non-empty dict of token -> id")
        self.vocab_file = vocab_file
        self.vocab = dict(vocab)
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        # The fast reference ignores never_split (only its slow twin uses it); kept for the config.
        self.never_split = list(never_split) if never_split else []
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        if padding_side not in ("right", "left"):
            raise TokenizerError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        if truncation_side not in ("right", "left"):
            raise TokenizerError(f"truncation_side must be 'right' or 'left', got {truncation_side!r}")
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.max_input_chars_per_word = int(max_input_chars_per_word)
        # Other keyword arguments (e.g. do_basic_tokenize, tokenizer_class from a config) are ignored.

        self.unk_token = _token_str(unk_token)
        self.sep_token = _token_str(sep_token)
        self.pad_token = _token_str(pad_token)
        self.cls_token = _token_str(cls_token)
        self.mask_token = _token_str(mask_token)
        self.additional_special_tokens = [_token_str(t) for t in (additional_special_tokens or [])]

        self._ids_to_tokens = {i: t for t, i in self.vocab.items()}
        # Special tokens missing from the vocabulary get the next ids, as the reference adds them.
        self._added = {}
        next_id = max(self._ids_to_tokens) + 1
        for tok in self.all_special_tokens:
            if tok not in self.vocab and tok not in self._added:
                self._added[tok] = next_id
                self._ids_to_tokens[next_id] = tok
                next_id += 1
        self._special_ids = {t: self._token_id(t) for t in self.all_special_tokens}
        self._special_id_set = set(self._special_ids.values())

        self._model = WordPiece(self.vocab, self.unk_token, self.max_input_chars_per_word)
        self._normalizer = BertNormalizer(
            lowercase=self.do_lower_case,
            strip_accents=strip_accents,
            handle_chinese_chars=self.tokenize_chinese_chars,
        )
        # Special-token strings in the text, leftmost-longest first as the reference's matcher.
        specials = [t for t in sorted(self._special_ids, key=len, reverse=True) if t]
        self._special_finditer = re.compile("|".join(map(re.escape, specials))).finditer if specials else None
        self._special_first_chars = {t[0] for t in specials}

    # ------------------------------------------------------------------------------------------
    # construction from / saving to a directory

    @classmethod
    def from_pretrained(cls, name_or_path, revision=None, **kwargs):
        """Load from a directory with vocab.txt (or tokenizer.json), tokenizer_config.json and
        special_tokens_map.json; a name that is not a directory goes through minidistil.sources."""
        path = Path(name_or_path)
        if path.is_file():
            return cls(vocab_file=str(path), **kwargs)
        if not path.is_dir():
            from .sources import resolve_model_dir

            path = Path(resolve_model_dir(str(name_or_path), revision=revision))
        config = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            f = path / name
            if f.exists():
                config.update(_read_json(f))
        init = {}
        for key in (
            "do_lower_case", "strip_accents", "tokenize_chinese_chars", "never_split", "model_max_length",
            "padding_side", "truncation_side", "clean_up_tokenization_spaces", "additional_special_tokens",
            *_SPECIAL_ATTRIBUTES,
        ):
            if key in config:
                init[key] = config[key]
        if "model_max_length" in init and init["model_max_length"] is not None:
            init["model_max_length"] = int(init["model_max_length"])
        if isinstance(init.get("additional_special_tokens"), list):
            init["additional_special_tokens"] = [_token_str(t) for t in init["additional_special_tokens"]]
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
        init.update(kwargs)
        return cls(**init)

    def save_pretrained(self, save_directory):
        """Write vocab.txt, tokenizer_config.json, special_tokens_map.json and tokenizer.json."""
        d = Path(save_directory)
        if d.exists() and not d.is_dir():
            raise TokenizerError(f"cannot save into {d}: it is a file, not a directory")
        d.mkdir(parents=True, exist_ok=True)
        vocab_path = d / "vocab.txt"
        by_id = sorted(self.vocab.items(), key=lambda kv: kv[1])
        with open(vocab_path, "w", encoding="utf-8", newline="\n") as f:
            expected = 0
            for token, i in by_id:
                if i != expected:
                    raise TokenizerError(f"cannot write vocab.txt: ids are not consecutive (token {token!r} has id {i})")
                f.write(token + "\n")
                expected += 1
        special_map = {a: getattr(self, a) for a in _SPECIAL_ATTRIBUTES}
        if self.additional_special_tokens:
            special_map["additional_special_tokens"] = list(self.additional_special_tokens)
        config = {
            "tokenizer_class": "DistilBertTokenizer",
            "do_lower_case": self.do_lower_case,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "never_split": self.never_split or None,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            **special_map,
        }
        _write_json(d / "tokenizer_config.json", config)
        _write_json(d / "special_tokens_map.json", special_map)
        _write_json(d / "tokenizer.json", self._tokenizer_json())
        return (
            str(d / "tokenizer_config.json"),
            str(d / "special_tokens_map.json"),
            str(vocab_path),
            str(d / "tokenizer.json"),
        )

    def _tokenizer_json(self):
        added = [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for t, i in sorted(self._special_ids.items(), key=lambda kv: kv[1])
        ]
        cls_, sep = self.cls_token, self.sep_token
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": {
                "type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": self.tokenize_chinese_chars,
                "strip_accents": self.strip_accents, "lowercase": self.do_lower_case,
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
                    t: {"id": t, "ids": [self._special_ids[t]], "tokens": [t]} for t in (cls_, sep)
                },
            },
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
            "model": {
                "type": "WordPiece", "unk_token": self.unk_token, "continuing_subword_prefix": "##",
                "max_input_chars_per_word": self.max_input_chars_per_word, "vocab": self.vocab,
            },
        }

    # ------------------------------------------------------------------------------------------
    # vocabulary and special tokens

    @property
    def vocab_size(self):
        return len(self.vocab)

    def __len__(self):
        return len(self.vocab) + len(self._added)

    def get_vocab(self):
        return {**self.vocab, **self._added}

    @property
    def all_special_tokens(self):
        out = []
        for t in [getattr(self, a) for a in _SPECIAL_ATTRIBUTES] + self.additional_special_tokens:
            if t is not None and t not in out:
                out.append(t)
        return out

    @property
    def all_special_ids(self):
        return [self._special_ids[t] for t in self.all_special_tokens]

    @property
    def special_tokens_map(self):
        out = {a: getattr(self, a) for a in _SPECIAL_ATTRIBUTES if getattr(self, a) is not None}
        if self.additional_special_tokens:
            out["additional_special_tokens"] = list(self.additional_special_tokens)
        return out

    def _token_id(self, token):
        i = self.vocab.get(token)
        if i is None:
            i = self._added.get(token)
        return i

    unk_token_id = property(lambda self: self._token_id(self.unk_token))
    sep_token_id = property(lambda self: self._token_id(self.sep_token))
    pad_token_id = property(lambda self: self._token_id(self.pad_token))
    cls_token_id = property(lambda self: self._token_id(self.cls_token))
    mask_token_id = property(lambda self: self._token_id(self.mask_token))
    pad_token_type_id = 0

    @property
    def max_len_single_sentence(self):
        return self.model_max_length - self.num_special_tokens_to_add(False)

    @property
    def max_len_sentences_pair(self):
        return self.model_max_length - self.num_special_tokens_to_add(True)

    def num_special_tokens_to_add(self, pair=False):
        return 3 if pair else 2

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            i = self._token_id(tokens)
            return self.unk_token_id if i is None else i
        return [self.convert_tokens_to_ids(t) for t in _check_str_list(tokens, "tokens")]

    def convert_ids_to_tokens(self, ids, skip_special_tokens=False):
        if _is_int(ids):
            return self._ids_to_tokens.get(int(ids))
        out = []
        for i in _to_id_list(ids):
            if skip_special_tokens and i in self._special_id_set:
                continue
            out.append(self._ids_to_tokens.get(i))
        return out

    def convert_tokens_to_string(self, tokens):
        """Join WordPiece tokens as the reference's WordPiece decoder does."""
        out = []
        for i, tok in enumerate(_check_str_list(tokens, "tokens")):
            if i:
                tok = tok[2:] if tok.startswith("##") else " " + tok
            out.append(_decoder_cleanup(tok))
        return "".join(out)

    def decode(self, token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=None, **kwargs):
        """Text of a list of ids. Ids outside the vocabulary are skipped, as the reference does."""
        ids = [int(token_ids)] if _is_int(token_ids) else _to_id_list(token_ids)
        tokens = []
        for i in ids:
            tok = self._ids_to_tokens.get(i)
            if tok is None or (skip_special_tokens and tok in self._special_ids):
                continue
            tokens.append(tok)
        text = self.convert_tokens_to_string(tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    def batch_decode(self, sequences, skip_special_tokens=False, clean_up_tokenization_spaces=None, **kwargs):
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        return [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces, **kwargs) for s in sequences]

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        cls_, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls_ + list(token_ids_0) + sep
        return cls_ + list(token_ids_0) + sep + list(token_ids_1) + sep

    def create_token_type_ids_from_sequences(self, token_ids_0, token_ids_1=None):
        first = [0] * (len(token_ids_0) + 2)
        return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False):
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise TokenizerError("token_ids_1 must be None when token_ids_0 already has special tokens")
            return [1 if i in self._special_id_set else 0 for i in token_ids_0]
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]

    # ------------------------------------------------------------------------------------------
    # tokenising one sequence

    def _encode_sequence(self, text, type_id=0, word_index=None, split_special_tokens=False):
        """Encoding of one text without special tokens: ids, character offsets, word indices.
        With split_special_tokens, special-token strings in the text are ordinary text."""
        ids, offsets, words = [], [], []
        ids_append, offsets_append, words_append = ids.append, offsets.append, words.append
        widx = 0
        cache_get = self._model._cache.get
        lookup = self._model.lookup
        normalize = self._normalizer.normalize
        word_finditer = self._normalizer._word_finditer
        pieces = ((0, text, None),) if split_special_tokens else self._split_special(text)
        for shift, piece, special_id in pieces:
            if special_id is not None:
                ids_append(special_id)
                offsets_append((shift, shift + len(piece)))
                words_append(widx)
                widx += 1
                continue
            norm, align = normalize(piece)
            if align is None and shift == 0:
                # The common case: offsets in the normalised text are offsets in the original.
                for m in word_finditer(norm):
                    p = cache_get(m.group())
                    if p is None:
                        p = lookup(m.group())
                    if type(p) is int:
                        ids_append(p)
                        offsets_append(m.span())
                        words_append(widx)
                    else:
                        s = m.start()
                        ids.extend(p[0])
                        offsets.extend([(s + a, s + b) for a, b in p[1]])
                        words.extend([widx] * len(p[0]))
                    widx += 1
                continue
            if align is None:
                align = range(len(norm))
            for m in word_finditer(norm):
                p = lookup(m.group())
                s = m.start()
                if type(p) is int:
                    ids_append(p)
                    offsets_append((align[s] + shift, align[m.end() - 1] + 1 + shift))
                    words_append(widx)
                else:
                    ids.extend(p[0])
                    offsets.extend([(align[s + a] + shift, align[s + b - 1] + 1 + shift) for a, b in p[1]])
                    words.extend([widx] * len(p[0]))
                widx += 1
        if word_index is not None:
            words = [word_index] * len(ids)
        return Encoding(ids, offsets, words, [type_id] * len(ids), id_to_token=self._ids_to_tokens)

    def _split_special(self, text):
        """(start, piece, special id or None) for the pieces between special-token strings."""
        if self._special_finditer is None or not any(c in text for c in self._special_first_chars):
            return ((0, text, None),)
        out = []
        last = 0
        for m in self._special_finditer(text):
            a, b = m.span()
            if a > last:
                out.append((last, text[last:a], None))
            out.append((a, m.group(), self._special_ids[m.group()]))
            last = b
        if last < len(text):
            out.append((last, text[last:], None))
        return out

    def _encode_input(self, seq, type_id, is_split_into_words, split_special_tokens=False):
        if not is_split_into_words:
            return self._encode_sequence(seq, type_id, None, split_special_tokens)
        # Pre-tokenised: each word on its own, offsets relative to that word, word index = its position.
        return merge([self._encode_sequence(w, type_id, i, split_special_tokens) for i, w in enumerate(seq)]) if seq else (
            Encoding([], [], [], id_to_token=self._ids_to_tokens)
        )

    def tokenize(self, text, pair=None, add_special_tokens=False, **kwargs):
        """WordPiece tokens of a text (and pair), by default without [CLS]/[SEP]."""
        return self.encode_plus(text, pair, add_special_tokens=add_special_tokens, **kwargs).tokens()

    # ------------------------------------------------------------------------------------------
    # the main entry points

    def __call__(self, text=None, text_pair=None, is_split_into_words=False, **options):
        """Encode a text, a pair (text, text_pair), or lists of them (a batch).

        options are those of batch_encode_plus (add_special_tokens, padding, truncation,
        max_length, stride, return_* ...), with the reference's names and defaults.
        """
        if text is None:
            raise TypeError("text must be a str, a list of str, or (with is_split_into_words) lists of words; got None")
        options["is_split_into_words"] = is_split_into_words
        if is_split_into_words:
            batched = isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], (list, tuple))
        else:
            batched = isinstance(text, (list, tuple))
        if batched:
            if text_pair is not None:
                if isinstance(text_pair, str) or not isinstance(text_pair, (list, tuple)):
                    raise TypeError("with a batch of texts, text_pair must be a list of the same length as text")
                if len(text_pair) != len(text):
                    raise TokenizerError(
                        f"text has {len(text)} items but text_pair has {len(text_pair)}: they must pair up one to one"
                    )
                items = list(zip(text, text_pair))
            else:
                items = list(text)
            return self.batch_encode_plus(items, **options)
        return self.encode_plus(text, text_pair, **options)

    def encode_plus(self, text, text_pair=None, return_tensors=None, return_overflowing_tokens=False, **options):
        """Encode one text or pair; lists are unbatched unless tensors or overflow windows are asked for."""
        # As the reference, an empty text_pair ("") means no pair.
        item = (text, text_pair) if text_pair else text
        out = self.batch_encode_plus([item], return_tensors=return_tensors,
                                     return_overflowing_tokens=return_overflowing_tokens, **options)
        if return_tensors is None and not return_overflowing_tokens:
            out = BatchEncoding(
                {k: (v[0] if len(v) > 0 and isinstance(v[0], list) else v) for k, v in out.items()},
                out.encodings,
                n_sequences=out.n_sequences,
            )
        return out

    def encode(self, text, text_pair=None, add_special_tokens=True, **options):
        """input_ids of one text or pair."""
        return self.encode_plus(text, text_pair, add_special_tokens=add_special_tokens, **options)["input_ids"]

    def batch_encode_plus(
        self,
        batch_text_or_text_pairs,
        add_special_tokens=True,
        padding=False,
        truncation=None,
        max_length=None,
        stride=0,
        is_split_into_words=False,
        pad_to_multiple_of=None,
        padding_side=None,
        return_tensors=None,
        return_token_type_ids=None,
        return_attention_mask=None,
        return_overflowing_tokens=False,
        return_special_tokens_mask=False,
        return_offsets_mapping=False,
        return_length=False,
        verbose=True,
        split_special_tokens=False,
        **kwargs,
    ):
        """Encode a list of texts or (text, text_pair) pairs."""
        _check_unknown_kwargs(kwargs)
        if not isinstance(batch_text_or_text_pairs, (list, tuple)):
            raise TypeError(
                f"batch_text_or_text_pairs must be a list or tuple, got {type(batch_text_or_text_pairs).__name__}"
            )
        padding_strategy, truncation_strategy, max_length = self._strategies(
            padding, truncation, max_length, pad_to_multiple_of
        )
        stride = _check_count(stride, "stride")
        if pad_to_multiple_of is not None:
            pad_to_multiple_of = _check_count(pad_to_multiple_of, "pad_to_multiple_of")
        side = self.padding_side if padding_side is None else padding_side
        if side not in ("right", "left"):
            raise TokenizerError(f"padding_side must be 'right' or 'left', got {side!r}")

        items = [_check_item(x, i, is_split_into_words) for i, x in enumerate(batch_text_or_text_pairs)]
        any_pair = any(b is not None for _, b in items)
        if truncation_strategy != "do_not_truncate":
            # The reference checks this when truncation is set up, whatever the input and even without
            # special tokens: the stride may not exceed max_length minus a single sequence's special tokens.
            room = max_length - self.num_special_tokens_to_add(False)
            if 0 <= room < stride:
                raise TokenizerError(
                    f"stride={stride} is larger than max_length={max_length} minus the "
                    f"{self.num_special_tokens_to_add(False)} special tokens ({room}); lower the stride"
                )
            needed = self.num_special_tokens_to_add(any_pair) if add_special_tokens else 0
            if max_length < needed:
                # The reference's Rust library silently skips truncation here (unsigned underflow).
                raise TokenizerError(
                    f"max_length={max_length} leaves no room for the {needed} special tokens of "
                    f"{'a pair' if any_pair else 'a single sequence'}; use max_length >= {needed}"
                )

        cls_id, sep_id = self.cls_token_id, self.sep_token_id
        encodings = []
        for a, b in items:
            enc_a = self._encode_input(a, 0, is_split_into_words, split_special_tokens)
            enc_b = self._encode_input(b, 1, is_split_into_words, split_special_tokens) if b is not None else None
            if truncation_strategy != "do_not_truncate":
                n_added = self.num_special_tokens_to_add(b is not None) if add_special_tokens else 0
                truncate_pair(enc_a, enc_b, max_length - n_added, truncation_strategy, stride, self.truncation_side)
            encodings.append(self._post_process(enc_a, enc_b, add_special_tokens, cls_id, sep_id))

        if padding_strategy != "do_not_pad" and encodings:
            if self.pad_token is None or self.pad_token_id is None:
                raise TokenizerError("padding needs a pad_token, and this tokenizer has none")
            target = max_length if padding_strategy == "max_length" else max(len(e.ids) for e in encodings)
            if pad_to_multiple_of and target % pad_to_multiple_of:
                target += pad_to_multiple_of - target % pad_to_multiple_of
            for e in encodings:
                e.pad(target, self.pad_token_id, self.pad_token_type_id, side)

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        rows = []
        mapping = []
        for i, e in enumerate(encodings):
            group = [e] + e.overflowing if return_overflowing_tokens else [e]
            rows.extend(group)
            mapping.extend([i] * len(group))
        data = {"input_ids": [r.ids for r in rows]}
        if return_token_type_ids:
            data["token_type_ids"] = [r.type_ids for r in rows]
        if return_attention_mask:
            data["attention_mask"] = [r.attention_mask for r in rows]
        if return_special_tokens_mask:
            data["special_tokens_mask"] = [r.special_tokens_mask for r in rows]
        if return_offsets_mapping:
            data["offset_mapping"] = [r.offsets for r in rows]
        if return_length:
            data["length"] = [len(r.ids) for r in rows]
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = mapping
        return BatchEncoding(data, rows, tensor_type=return_tensors, n_sequences=2 if any_pair else 1)

    def _post_process(self, enc_a, enc_b, add_special_tokens, cls_id, sep_id):
        """[CLS] A [SEP] (B [SEP]) with the reference's type ids, sequence ranges and overflow windows."""
        enc_a.set_sequence_id(0)
        parts = [enc_a]
        if enc_b is not None:
            enc_b.set_sequence_id(1)  # its type ids are already 1
            parts.append(enc_b)
        if not add_special_tokens:
            if enc_b is None:
                return enc_a
            return merge(parts)
        lookup = self._ids_to_tokens

        def special(i, type_id):
            return Encoding([i], [(0, 0)], [None], [type_id], [1], [1], id_to_token=lookup)

        if enc_b is None:
            if not enc_a.overflowing:
                # The common case, without the general merge.
                n = len(enc_a.ids)
                return Encoding(
                    [cls_id] + enc_a.ids + [sep_id], [(0, 0)] + enc_a.offsets + [(0, 0)],
                    [None] + enc_a.words + [None], [0] * (n + 2), [1] + [0] * n + [1], [1] * (n + 2),
                    None, {0: (1, n + 1)}, lookup,
                )
            return merge([special(cls_id, 0), enc_a, special(sep_id, 0)])
        return merge([special(cls_id, 0), enc_a, special(sep_id, 0), enc_b, special(sep_id, 1)])

    def _strategies(self, padding, truncation, max_length, pad_to_multiple_of):
        """Padding and truncation strategies and max_length, resolved as the reference does."""
        if max_length is not None:
            max_length = _check_count(max_length, "max_length")
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"  # max_length alone turns truncation on, as in the reference
        padding = _enum_value(padding)
        truncation = _enum_value(truncation)
        if padding is True:
            padding_strategy = "longest"
        elif padding is False or padding is None:
            padding_strategy = "do_not_pad"
        elif isinstance(padding, str) and padding in _PADDING:
            padding_strategy = padding
        else:
            raise TokenizerError(f"unknown padding strategy {padding!r}: use True, False, 'longest', 'max_length' or 'do_not_pad'")
        if truncation is True:
            truncation_strategy = "longest_first"
        elif truncation is False or truncation is None:
            truncation_strategy = "do_not_truncate"
        elif isinstance(truncation, str) and truncation in _TRUNCATION:
            truncation_strategy = truncation
        else:
            raise TokenizerError(
                f"unknown truncation strategy {truncation!r}: use True, False, 'longest_first', 'only_first', "
                "'only_second' or 'do_not_truncate'"
            )
        if max_length is None:
            if padding_strategy == "max_length":
                if self.model_max_length > LARGE_INTEGER:
                    padding_strategy = "do_not_pad"  # no known maximum: the reference does not pad
                else:
                    max_length = self.model_max_length
            if truncation_strategy != "do_not_truncate":
                if self.model_max_length > LARGE_INTEGER:
                    truncation_strategy = "do_not_truncate"  # likewise, no truncation
                else:
                    max_length = self.model_max_length
        if (
            truncation_strategy != "do_not_truncate"
            and padding_strategy != "do_not_pad"
            and pad_to_multiple_of is not None
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise TokenizerError(
                f"truncation and padding are both on but the truncation length ({max_length}) is not a "
                f"multiple of pad_to_multiple_of ({pad_to_multiple_of})"
            )
        return padding_strategy, truncation_strategy, max_length

    def __repr__(self):
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
            f"strip_accents={self.strip_accents}, tokenize_chinese_chars={self.tokenize_chinese_chars}, "
            f"model_max_length={self.model_max_length})"
        )


class DistilBertTokenizerFast(DistilBertTokenizer):
    """The same engine under the reference's fast name (there is only one implementation here)."""


# ----------------------------------------------------------------------------------------------
# argument checks


def _check_unknown_kwargs(kwargs):
    if kwargs:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(kwargs))}")


def _check_count(value, name):
    if isinstance(value, bool) or not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < 0:
        raise TokenizerError(f"{name} must be >= 0, got {value}")
    return value


def _is_int(value):
    try:
        import numpy as np

        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    except ImportError:  # pragma: no cover
        return isinstance(value, int) and not isinstance(value, bool)


def _to_id_list(ids):
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if not isinstance(ids, (list, tuple)):
        raise TypeError(f"token ids must be an int or a list of ints, got {type(ids).__name__}")
    out = []
    for k, i in enumerate(ids):
        if not _is_int(i):
            raise TypeError(f"token id at position {k} is {type(i).__name__}, not int")
        out.append(int(i))
    return out


def _check_str_list(items, name):
    if isinstance(items, str) or not isinstance(items, (list, tuple)):
        raise TypeError(f"{name} must be a list of str, got {type(items).__name__}")
    for k, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{k}] is {type(t).__name__}, not str")
    return items


def _check_text(x, where, is_split_into_words):
    if is_split_into_words:
        if isinstance(x, str) or not isinstance(x, (list, tuple)):
            raise TypeError(f"{where} must be a list of words (str) with is_split_into_words=True, got {type(x).__name__}")
        for k, w in enumerate(x):
            if not isinstance(w, str):
                raise TypeError(f"{where}[{k}] is {type(w).__name__}, not str")
        return list(x)
    if not isinstance(x, str):
        raise TypeError(f"{where} must be a str, got {type(x).__name__}")
    return x


def _check_item(x, i, is_split_into_words):
    """(first, second or None) of batch item i, checked."""
    if isinstance(x, tuple) or (isinstance(x, list) and not is_split_into_words):
        if len(x) != 2:
            raise TypeError(
                f"batch item {i} must be a str or a pair (text, text_pair), got a {type(x).__name__} of length {len(x)}"
            )
        a = _check_text(x[0], f"batch item {i} (first text)", is_split_into_words)
        b = _check_text(x[1], f"batch item {i} (second text)", is_split_into_words)
        return a, b
    return _check_text(x, f"batch item {i}", is_split_into_words), None


# ----------------------------------------------------------------------------------------------
# files


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


def _from_tokenizer_json(path):
    """Constructor arguments from a tokenizer.json of a BERT WordPiece tokenizer."""
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
