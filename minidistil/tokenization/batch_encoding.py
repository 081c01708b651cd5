"""What the tokenizer returns: the model inputs of a batch plus the `Encoding` of each row.

`BatchEncoding` is a mapping of field name -> one row per encoding (lists, or int64 arrays with
return_tensors="np"), with the reference's lookups from tokens to words, characters and sequences.

    >>> from minidistil.tokenization.encoding import Encoding
    >>> batch = BatchEncoding.from_encodings([Encoding([2, 5, 3], [(0, 0), (0, 5), (0, 0)], [None, 0, None])],
    ...                                      fields=("input_ids", "attention_mask"))
    >>> dict(batch), batch.word_ids(0)
    ({'input_ids': [[2, 5, 3]], 'attention_mask': [[1, 1, 1]]}, [None, 0, None])
"""

from __future__ import annotations

from collections import UserDict
from operator import attrgetter

import numpy as np

from ..errors import TokenizerError

# Field name -> its value for one row, in the order the reference returns the fields.
ROW_FIELDS = {
    "input_ids": attrgetter("ids"),
    "token_type_ids": attrgetter("type_ids"),
    "attention_mask": attrgetter("attention_mask"),
    "special_tokens_mask": attrgetter("special_tokens_mask"),
    "offset_mapping": attrgetter("offsets"),
    "length": len,
}


NUMPY_TENSOR_TYPES = ("np", "tf", "jax")  # return_tensors values answered with NumPy arrays


class BatchEncoding(UserDict):
    """The model inputs (a dict of lists or arrays) plus the `Encoding` of each row."""

    def __init__(self, data=None, encodings=None, tensor_type=None, n_sequences=None):
        super().__init__(data or {})
        self._encodings = encodings
        self._n_sequences = n_sequences
        if tensor_type is not None:
            self.convert_to_tensors(tensor_type)

    @classmethod
    def from_encodings(cls, encodings, fields, overflowing=False, tensor_type=None, n_sequences=1):
        """The batch of `encodings` with the named ROW_FIELDS; with `overflowing`, each encoding's overflow
        windows follow it as rows of their own and overflow_to_sample_mapping says whose they are."""
        rows, mapping = [], []
        for i, e in enumerate(encodings):
            group = [e] + e.overflowing if overflowing else [e]
            rows.extend(group)
            mapping.extend([i] * len(group))
        data = {name: [get(r) for r in rows] for name, get in ROW_FIELDS.items() if name in fields}
        if overflowing:
            data["overflow_to_sample_mapping"] = mapping
        return cls(data, rows, tensor_type=tensor_type, n_sequences=n_sequences)

    @property
    def encodings(self):
        return self._encodings

    @property
    def is_fast(self):
        return self._encodings is not None

    @property
    def n_sequences(self):
        return self._n_sequences

    def __getattr__(self, item):
        # Only called for names that are not attributes; "data" itself may be missing mid-unpickling.
        if item == "data" or item.startswith("__"):
            raise AttributeError(item)
        try:
            return self.data[item]
        except KeyError:
            raise AttributeError(item) from None

    def __getitem__(self, item):
        if isinstance(item, str):
            return self.data[item]
        if isinstance(item, int):
            if self._encodings is None:
                raise KeyError("integer indexing needs the encodings")
            return self._encodings[item]
        if isinstance(item, slice):
            return {k: v[item] for k, v in self.data.items()}
        raise KeyError(f"invalid key {item!r}: use a field name or an integer")

    def __getstate__(self):
        return {"data": self.data, "encodings": self._encodings, "n_sequences": self._n_sequences}

    def __setstate__(self, state):
        self.data = state["data"]
        self._encodings = state["encodings"]
        self._n_sequences = state["n_sequences"]

    def _encoding(self, batch_index):
        if self._encodings is None:
            raise TokenizerError("this BatchEncoding has no encodings")
        if not 0 <= batch_index < len(self._encodings) and not -len(self._encodings) <= batch_index < 0:
            raise IndexError(f"batch_index {batch_index} out of range for {len(self._encodings)} encodings")
        return self._encodings[batch_index]

    def tokens(self, batch_index=0):
        return self._encoding(batch_index).tokens

    def word_ids(self, batch_index=0):
        """Index of the word each token comes from (None for special and padding tokens)."""
        return self._encoding(batch_index).word_ids

    def words(self, batch_index=0):
        return self.word_ids(batch_index)

    def sequence_ids(self, batch_index=0):
        """0 or 1: which sequence of the pair each token comes from (None for special and padding tokens)."""
        return self._encoding(batch_index).sequence_ids

    def token_to_sequence(self, batch_or_token_index, token_index=None):
        b, t = (0, batch_or_token_index) if token_index is None else (batch_or_token_index, token_index)
        return self._encoding(b).token_to_sequence(t)

    def token_to_word(self, batch_or_token_index, token_index=None):
        b, t = (0, batch_or_token_index) if token_index is None else (batch_or_token_index, token_index)
        return self._encoding(b).token_to_word(t)

    def word_to_tokens(self, batch_or_word_index, word_index=None, sequence_index=0):
        b, w = (0, batch_or_word_index) if word_index is None else (batch_or_word_index, word_index)
        return self._encoding(b).word_to_tokens(w, sequence_index)

    def token_to_chars(self, batch_or_token_index, token_index=None):
        b, t = (0, batch_or_token_index) if token_index is None else (batch_or_token_index, token_index)
        return self._encoding(b).token_to_chars(t)

    def char_to_token(self, batch_or_char_index, char_index=None, sequence_index=0):
        b, c = (0, batch_or_char_index) if char_index is None else (batch_or_char_index, char_index)
        return self._encoding(b).char_to_token(c, sequence_index)

    def word_to_chars(self, batch_or_word_index, word_index=None, sequence_index=0):
        b, w = (0, batch_or_word_index) if word_index is None else (batch_or_word_index, word_index)
        return self._encoding(b).word_to_chars(w, sequence_index)

    def char_to_word(self, batch_or_char_index, char_index=None, sequence_index=0):
        b, c = (0, batch_or_char_index) if char_index is None else (batch_or_char_index, char_index)
        return self._encoding(b).char_to_word(c, sequence_index)

    def convert_to_tensors(self, tensor_type="np"):
        if tensor_type is None:
            return self
        # "tf" and "jax" give NumPy too: the TFDistilBert* / FlaxDistilBert* names here are NumPy models, so the
        # model cards' `tokenizer(text, return_tensors="tf")` then `model(encoded)` runs as written.
        if str(getattr(tensor_type, "value", tensor_type)) not in NUMPY_TENSOR_TYPES:
            raise TokenizerError(
                f"return_tensors={tensor_type!r} is not supported: use 'np' (NumPy; 'tf' and 'jax' give NumPy "
                "too) or None (lists)"
            )
        for key, value in self.data.items():
            if isinstance(value, np.ndarray):
                continue
            rows = value if value and isinstance(value[0], (list, tuple)) else None
            if rows is not None and len({len(r) for r in rows}) > 1:
                raise TokenizerError(
                    f"cannot make one int64 array of {key!r}: the rows have different lengths "
                    f"({sorted({len(r) for r in rows})}). Pass padding=True (and truncation=True if needed)."
                )
            self.data[key] = np.asarray(value, dtype=np.int64)
        return self
