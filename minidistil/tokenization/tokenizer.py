"""DistilBERT's tokenizer with the interface of transformers' DistilBertTokenizer(Fast).

One engine under both reference names. What this file adds to the engine (engine.py) is the
reference's interface: construction from files or a hub name, special-token bookkeeping, id/token
conversions, decoding, and the call with the reference's names, defaults and return types.

Where the slow (Python) and fast (Rust) reference tokenizers disagree, this follows the fast one:
no NFC first, accents stripped before lowercasing, CJK range from U+2B920, longest_first split,
overflow windows of pairs, `never_split` has no effect, special tokens matched before normalisation.

    >>> tok = DistilBertTokenizer(vocab={"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4,
    ...                                  "hello": 5, "world": 6, "!": 7})
    >>> enc = tok(["Hello world!", "hello"], padding=True, return_offsets_mapping=True)
    >>> enc["input_ids"], enc["attention_mask"][1]
    ([[2, 5, 6, 7, 3], [2, 5, 3, 0, 0]], [1, 1, 1, 0, 0])
    >>> enc["offset_mapping"][0], enc.word_ids(0)
    ([(0, 0), (0, 5), (6, 11), (11, 12), (0, 0)], [None, 0, 1, 2, None])
    >>> tok.decode(enc["input_ids"][0], skip_special_tokens=True)
    'hello world!'
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TokenizerError
from .arguments import (
    check_count,
    check_item,
    check_str_list,
    check_truncation_room,
    check_unknown_kwargs,
    is_int,
    resolve_strategies,
    to_id_list,
)
from .batch_encoding import BatchEncoding
from .decoder import clean_up_tokenization, join_wordpieces
from .encoding import pad_batch
from .engine import Engine, n_special_tokens
from .files import SPECIAL_TOKEN_ATTRIBUTES, load_vocab, read_pretrained, special_token_list, special_token_text, write_pretrained
from .normalizer import BertNormalizer
from .wordpiece import WordPiece

VERY_LARGE_INTEGER = int(1e30)  # model_max_length when none is known, as the reference


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

        self.unk_token = special_token_text(unk_token)
        self.sep_token = special_token_text(sep_token)
        self.pad_token = special_token_text(pad_token)
        self.cls_token = special_token_text(cls_token)
        self.mask_token = special_token_text(mask_token)
        self.additional_special_tokens = special_token_list(additional_special_tokens, "additional_special_tokens")

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

        model = WordPiece(self.vocab, self.unk_token, self.max_input_chars_per_word)
        normalizer = BertNormalizer(
            lowercase=self.do_lower_case,
            strip_accents=strip_accents,
            handle_chinese_chars=self.tokenize_chinese_chars,
        )
        self._engine = Engine(normalizer, model, self._special_ids, self._ids_to_tokens)

    # ------------------------------------------------------------------------------------------
    # construction from / saving to a directory

    @classmethod
    def from_pretrained(cls, name_or_path, revision=None, **kwargs):
        """Load from a directory with vocab.txt (or tokenizer.json), tokenizer_config.json and
        special_tokens_map.json (see files.py), or from a vocab.txt; a name that is neither goes
        through minidistil.sources. Keyword arguments override what the files say."""
        path = Path(name_or_path)
        if path.is_file():
            return cls(vocab_file=str(path), **kwargs)
        if not path.is_dir():
            from ..sources import resolve_model_dir

            path = Path(resolve_model_dir(str(name_or_path), revision=revision))
        return cls(**{**read_pretrained(path), **kwargs})

    def save_pretrained(self, save_directory):
        """Write vocab.txt, tokenizer_config.json, special_tokens_map.json and tokenizer.json."""
        special_map = {a: getattr(self, a) for a in SPECIAL_TOKEN_ATTRIBUTES}
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
        return write_pretrained(save_directory, self.vocab, config, self._special_ids, self.max_input_chars_per_word)

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
        for t in [getattr(self, a) for a in SPECIAL_TOKEN_ATTRIBUTES] + self.additional_special_tokens:
            if t is not None and t not in out:
                out.append(t)
        return out

    @property
    def all_special_ids(self):
        return [self._special_ids[t] for t in self.all_special_tokens]

    @property
    def special_tokens_map(self):
        out = {a: getattr(self, a) for a in SPECIAL_TOKEN_ATTRIBUTES if getattr(self, a) is not None}
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
        return n_special_tokens(pair)

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            i = self._token_id(tokens)
            return self.unk_token_id if i is None else i
        return [self.convert_tokens_to_ids(t) for t in check_str_list(tokens, "tokens")]

    def convert_ids_to_tokens(self, ids, skip_special_tokens=False):
        if is_int(ids):
            return self._ids_to_tokens.get(int(ids))
        out = []
        for i in to_id_list(ids):
            if skip_special_tokens and i in self._special_id_set:
                continue
            out.append(self._ids_to_tokens.get(i))
        return out

    def convert_tokens_to_string(self, tokens):
        """Join WordPiece tokens as the reference's WordPiece decoder does."""
        return join_wordpieces(check_str_list(tokens, "tokens"))

    def decode(self, token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=None, **kwargs):
        """Text of a list of ids. Ids outside the vocabulary are skipped, as the reference does."""
        ids = [int(token_ids)] if is_int(token_ids) else to_id_list(token_ids)
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
        check_unknown_kwargs(kwargs)
        if not isinstance(batch_text_or_text_pairs, (list, tuple)):
            raise TypeError(
                f"batch_text_or_text_pairs must be a list or tuple, got {type(batch_text_or_text_pairs).__name__}"
            )
        padding_strategy, truncation_strategy, max_length = resolve_strategies(
            padding, truncation, max_length, pad_to_multiple_of, self.model_max_length
        )
        stride = check_count(stride, "stride")
        if pad_to_multiple_of is not None:
            pad_to_multiple_of = check_count(pad_to_multiple_of, "pad_to_multiple_of")
        side = self.padding_side if padding_side is None else padding_side
        if side not in ("right", "left"):
            raise TokenizerError(f"padding_side must be 'right' or 'left', got {side!r}")

        items = [check_item(x, i, is_split_into_words) for i, x in enumerate(batch_text_or_text_pairs)]
        any_pair = any(b is not None for _, b in items)
        if truncation_strategy != "do_not_truncate":
            # Checked whatever the input and even without special tokens, as the reference does.
            needed = self.num_special_tokens_to_add(any_pair) if add_special_tokens else 0
            check_truncation_room(max_length, stride, self.num_special_tokens_to_add(False), needed, any_pair)

        encodings = self._engine.encode_batch(
            items, self.cls_token_id, self.sep_token_id, add_special_tokens, truncation_strategy, max_length,
            stride, self.truncation_side, is_split_into_words, split_special_tokens,
        )
        if padding_strategy != "do_not_pad" and encodings:
            if self.pad_token is None or self.pad_token_id is None:
                raise TokenizerError("padding needs a pad_token, and this tokenizer has none")
            length = max_length if padding_strategy == "max_length" else None
            pad_batch(encodings, self.pad_token_id, self.pad_token_type_id, side, length, pad_to_multiple_of)

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        wanted = {
            "input_ids": True,
            "token_type_ids": return_token_type_ids,
            "attention_mask": return_attention_mask,
            "special_tokens_mask": return_special_tokens_mask,
            "offset_mapping": return_offsets_mapping,
            "length": return_length,
        }
        return BatchEncoding.from_encodings(
            encodings, [name for name, on in wanted.items() if on], return_overflowing_tokens,
            tensor_type=return_tensors, n_sequences=2 if any_pair else 1,
        )

    def __repr__(self):
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
            f"strip_accents={self.strip_accents}, tokenize_chinese_chars={self.tokenize_chinese_chars}, "
            f"model_max_length={self.model_max_length})"
        )


class DistilBertTokenizerFast(DistilBertTokenizer):
    """The same engine under the reference's fast name (there is only one implementation here)."""
