"""One encoded sequence (or pair) and its truncation, overflow windows and padding, as the reference fast tokenizer.

`Encoding` mirrors the Rust `tokenizers::Encoding`: the ids of one tokenised sequence (or pair) with
their character offsets, word indices, special-token mask, attention mask, the sequence each token
comes from, and the overflowing windows cut off by truncation.

    >>> enc = Encoding([7, 8, 9, 10], [(0, 1), (2, 3), (4, 5), (6, 7)], [0, 1, 2, 3])
    >>> enc.truncate(3, stride=1)  # keep 3 tokens; the rest in windows that overlap by 1
    >>> enc.ids, [o.ids for o in enc.overflowing]
    ([7, 8, 9], [[9, 10]])
    >>> pad_batch([enc], pad_id=0, length=5)
    >>> enc.ids, enc.attention_mask
    ([7, 8, 9, 0, 0], [1, 1, 1, 0, 0])
"""

from __future__ import annotations

from ..errors import TokenizerError


class Encoding:
    """One encoded sequence (or pair of sequences)."""

    __slots__ = (
        "ids",
        "type_ids",
        "offsets",
        "words",
        "special_tokens_mask",
        "attention_mask",
        "overflowing",
        "sequence_ranges",
        "_id_to_token",
    )

    def __init__(self, ids, offsets, words, type_ids=None, special_tokens_mask=None, attention_mask=None,
                 overflowing=None, sequence_ranges=None, id_to_token=None):
        n = len(ids)
        self.ids = ids
        self.offsets = offsets
        self.words = words
        self.type_ids = type_ids if type_ids is not None else [0] * n
        self.special_tokens_mask = special_tokens_mask if special_tokens_mask is not None else [0] * n
        self.attention_mask = attention_mask if attention_mask is not None else [1] * n
        self.overflowing = overflowing if overflowing is not None else []
        # sequence id -> (start, stop) token range; empty means one sequence covering everything.
        self.sequence_ranges = sequence_ranges if sequence_ranges is not None else {}
        self._id_to_token = id_to_token

    def __len__(self):
        return len(self.ids)

    def __repr__(self):
        return f"Encoding(num_tokens={len(self.ids)}, overflowing={len(self.overflowing)})"

    @property
    def tokens(self):
        lookup = self._id_to_token
        return [lookup.get(i) for i in self.ids] if lookup is not None else None

    @property
    def n_sequences(self):
        return len(self.sequence_ranges) or 1

    @property
    def word_ids(self):
        return list(self.words)

    @property
    def sequence_ids(self):
        if not self.sequence_ranges:
            return [0] * len(self.ids)
        out = [None] * len(self.ids)
        for seq, (a, b) in self.sequence_ranges.items():
            out[a:b] = [seq] * (b - a)
        return out

    def _slice(self, a, b):
        return Encoding(
            self.ids[a:b], self.offsets[a:b], self.words[a:b], self.type_ids[a:b],
            self.special_tokens_mask[a:b], self.attention_mask[a:b], id_to_token=self._id_to_token,
        )

    def copy(self):
        return Encoding(
            list(self.ids), list(self.offsets), list(self.words), list(self.type_ids),
            list(self.special_tokens_mask), list(self.attention_mask),
            [o.copy() for o in self.overflowing], dict(self.sequence_ranges), self._id_to_token,
        )

    def set_sequence_id(self, seq):
        self.sequence_ranges = {seq: (0, len(self.ids))}
        for o in self.overflowing:
            o.sequence_ranges = {seq: (0, len(o.ids))}

    # -- truncation (Encoding::truncate) --------------------------------------------------------

    def truncate(self, max_len, stride, direction="right"):
        """Keep `max_len` tokens; the rest goes to `overflowing` as windows overlapping by `stride`."""
        n = len(self.ids)
        if max_len >= n:
            return
        if max_len == 0:
            whole = Encoding([], [], [])
            whole._become(self)
            self._become(Encoding([], [], [], overflowing=[whole], id_to_token=self._id_to_token))
            return
        if stride >= max_len:
            # The reference's Rust library panics here ("`stride` must be strictly less than `max_len`").
            raise TokenizerError(
                f"stride ({stride}) must be smaller than the number of tokens a window keeps of this "
                f"sequence ({max_len}): max_length minus the special tokens, and for pairs the share "
                "truncation gives to this sequence. Lower the stride or raise max_length."
            )
        step = max_len - stride
        parts = []
        if direction == "right":
            for start in range(0, n, step):
                stop = min(start + max_len, n)
                parts.append((start, stop))
                if stop == n:
                    break
        else:
            for last in range(n - 1, -1, -step):
                stop = last + 1
                start = max(0, stop - max_len)
                parts.append((start, stop))
                if start == 0:
                    break
        first = self._slice(*parts[0])  # (sequence ranges are dropped, as in the reference)
        first.overflowing = [self._slice(a, b) for a, b in parts[1:]]
        self._become(first)

    def _become(self, other):
        for name in Encoding.__slots__:
            setattr(self, name, getattr(other, name))

    # -- merging (Encoding::merge_with) -------------------------------------------------------

    def merge_with(self, pair):
        """Append `pair`; overflowing windows combine as in the reference: each of ours with the pair
        and each of its windows, then ourself with each of the pair's windows."""
        overflowings = []
        for own in self.overflowing:
            e = own.copy()
            e.merge_with(pair.copy())
            overflowings.append(e)
            for other in pair.overflowing:
                e = own.copy()
                e.merge_with(other.copy())
                overflowings.append(e)
        for other in pair.overflowing:
            e = self.copy()
            e.merge_with(other.copy())
            overflowings.append(e)
        n = len(self.ids)
        for seq, (a, b) in pair.sequence_ranges.items():
            self.sequence_ranges[seq] = (n + a, n + b)
        self.ids = self.ids + pair.ids
        self.type_ids = self.type_ids + pair.type_ids
        self.words = self.words + pair.words
        self.offsets = self.offsets + pair.offsets
        self.special_tokens_mask = self.special_tokens_mask + pair.special_tokens_mask
        self.attention_mask = self.attention_mask + pair.attention_mask
        self.overflowing = overflowings

    # -- padding (Encoding::pad) --------------------------------------------------------------

    def pad(self, length, pad_id, pad_type_id=0, side="right"):
        for o in self.overflowing:
            o.pad(length, pad_id, pad_type_id, side)
        k = length - len(self.ids)
        if k <= 0:
            return
        if side == "right":
            self.ids = self.ids + [pad_id] * k
            self.type_ids = self.type_ids + [pad_type_id] * k
            self.words = self.words + [None] * k
            self.offsets = self.offsets + [(0, 0)] * k
            self.special_tokens_mask = self.special_tokens_mask + [1] * k
            self.attention_mask = self.attention_mask + [0] * k
        else:
            self.ids = [pad_id] * k + self.ids
            self.type_ids = [pad_type_id] * k + self.type_ids
            self.words = [None] * k + self.words
            self.offsets = [(0, 0)] * k + self.offsets
            self.special_tokens_mask = [1] * k + self.special_tokens_mask
            self.attention_mask = [0] * k + self.attention_mask
            self.sequence_ranges = {s: (a + k, b + k) for s, (a, b) in self.sequence_ranges.items()}

    # -- lookups (as the reference's Encoding) ------------------------------------------------

    def _range(self, sequence_index):
        return self.sequence_ranges.get(sequence_index, (0, len(self.ids)))

    def token_to_sequence(self, token_index):
        if token_index > len(self.ids):
            return None
        if not self.sequence_ranges:
            return 0
        for seq, (a, b) in self.sequence_ranges.items():
            if a <= token_index < b:
                return seq
        return None

    def token_to_word(self, token_index):
        return self.words[token_index]

    def token_to_chars(self, token_index):
        return self.offsets[token_index]

    def word_to_tokens(self, word_index, sequence_index=0):
        a, b = self._range(sequence_index)
        hits = [i for i in range(a, b) if self.words[i] == word_index]
        return (hits[0], hits[-1] + 1) if hits else None

    def word_to_chars(self, word_index, sequence_index=0):
        span = self.word_to_tokens(word_index, sequence_index)
        if span is None or span[1] == 0:
            return None
        return self.offsets[span[0]][0], self.offsets[span[1] - 1][1]

    def char_to_token(self, char_index, sequence_index=0):
        a, b = self._range(sequence_index)
        for i in range(a, b):
            s, e = self.offsets[i]
            if s <= char_index < e:
                return i
        return None

    def char_to_word(self, char_index, sequence_index=0):
        t = self.char_to_token(char_index, sequence_index)
        return None if t is None else self.words[t]


def merge(encodings):
    """Encoding::merge of the reference: the encodings one after the other, overflow windows combined.

        >>> merge([Encoding([1], [(0, 0)], [None]), Encoding([5, 6], [(0, 2), (3, 4)], [0, 1])]).ids
        [1, 5, 6]
    """
    out = Encoding([], [], [], id_to_token=encodings[0]._id_to_token if encodings else None)
    for e in encodings:
        out.merge_with(e)
    return out


def truncate_pair(first, second, max_length, strategy, stride, direction):
    """truncate_encodings of the reference, in place. `max_length` excludes the special tokens.

        >>> a, b = Encoding([1, 2, 3, 4, 5], [(0, 0)] * 5, [0] * 5), Encoding([6, 7], [(0, 0)] * 2, [0] * 2)
        >>> truncate_pair(a, b, 5, "longest_first", 0, "right")  # the longer sequence gives way
        >>> a.ids, b.ids
        ([1, 2, 3], [6, 7])
    """
    if max_length == 0:
        first.truncate(0, stride, direction)
        if second is not None:
            second.truncate(0, stride, direction)
        return
    total = len(first) + (len(second) if second is not None else 0)
    if total <= max_length:
        return
    to_remove = total - max_length
    if strategy == "longest_first":
        if second is None:
            first.truncate(total - to_remove, stride, direction)
            return
        # Fast reference's split: the shorter keeps min(its length, max_length / 2 rounded so the two
        # add up); the slow reference removes one token at a time from the longer and breaks ties
        # differently. We follow the fast one.
        n1, n2 = len(first), len(second)
        swap = n1 > n2
        if swap:
            n1, n2 = n2, n1
        n2 = n1 if n1 > max_length else max(n1, max_length - n1)
        if n1 + n2 > max_length:
            n1 = max_length // 2
            n2 = n1 + max_length % 2
        if swap:
            n1, n2 = n2, n1
        first.truncate(n1, stride, direction)
        second.truncate(n2, stride, direction)
        return
    if strategy == "only_second" and second is None:
        raise TokenizerError("truncation='only_second' needs a pair of sequences; this input has only one")
    target = first if strategy == "only_first" else second
    if len(target) <= to_remove:
        other = "second" if strategy == "only_first" else "first"
        raise TokenizerError(
            f"cannot truncate to max_length with truncation={strategy!r}: the {other} sequence and the "
            f"special tokens alone need more than max_length ({to_remove} tokens would have to go from a "
            f"sequence of {len(target)}). Use truncation='longest_first' or a larger max_length."
        )
    target.truncate(len(target) - to_remove, stride, direction)


def pad_batch(encodings, pad_id, pad_type_id=0, side="right", length=None, multiple_of=None):
    """pad_encodings of the reference, in place: every encoding and its overflow windows padded to
    `length` (None: the longest encoding's length), rounded up to a multiple of `multiple_of`."""
    target = max(len(e) for e in encodings) if length is None else length
    if multiple_of and target % multiple_of:
        target += multiple_of - target % multiple_of
    for e in encodings:
        e.pad(target, pad_id, pad_type_id, side)
