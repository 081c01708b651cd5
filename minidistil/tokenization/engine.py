"""The encoding engine: texts (or pairs of texts) in, `Encoding`s with [CLS]/[SEP], truncated, out.

Per text:

    split out special-token strings ("[MASK]", ...; matched on the original text, case-sensitive)
    → normalise each other piece (normalizer.py: clean, CJK spacing, accents, lowercase; with an
      alignment back to the original characters) → split into words → WordPiece each word
      (wordpiece.py, cached) → Encoding with character offsets into the original string
    → truncation with stride/overflow windows → [CLS] A [SEP] (B [SEP])           (encoding.py)

    >>> from minidistil.tokenization.normalizer import BertNormalizer
    >>> from minidistil.tokenization.wordpiece import WordPiece
    >>> vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[MASK]": 3, "hello": 4, "world": 5}
    >>> engine = Engine(BertNormalizer(), WordPiece(vocab), {"[CLS]": 1, "[SEP]": 2, "[MASK]": 3},
    ...                 {i: t for t, i in vocab.items()})
    >>> enc = engine.encode_sequence("Hello [MASK]!")
    >>> enc.ids, enc.offsets, enc.words
    ([4, 3, 0], [(0, 5), (6, 12), (12, 13)], [0, 1, 2])
    >>> [e.tokens for e in engine.encode_batch([("Hello", "world")], cls_id=1, sep_id=2)]
    [['[CLS]', 'hello', '[SEP]', 'world', '[SEP]']]
"""

from __future__ import annotations

import re

from .encoding import Encoding, merge, truncate_pair


def n_special_tokens(pair):
    """How many special tokens the template [CLS] A [SEP] (B [SEP]) adds."""
    return 3 if pair else 2


class Engine:
    """Encodes with one normaliser, one WordPiece model and a fixed set of special tokens.

    special_ids: special token -> id (these strings in a text become their token unless
    split_special_tokens); id_to_token: id -> token, for `Encoding.tokens`.
    """

    def __init__(self, normalizer, model, special_ids, id_to_token):
        self.normalizer = normalizer
        self.model = model
        self.special_ids = special_ids
        self.id_to_token = id_to_token
        # Special-token strings in the text, leftmost-longest first as the reference's matcher.
        specials = [t for t in sorted(special_ids, key=len, reverse=True) if t]
        self._special_finditer = re.compile("|".join(map(re.escape, specials))).finditer if specials else None
        self._special_first_chars = {t[0] for t in specials}

    # -- one sequence -------------------------------------------------------------------------

    def encode_sequence(self, text, type_id=0, word_index=None, split_special_tokens=False):
        """Encoding of one text without special tokens: ids, character offsets, word indices.
        With split_special_tokens, special-token strings in the text are ordinary text."""
        ids, offsets, words = [], [], []
        ids_append, offsets_append, words_append = ids.append, offsets.append, words.append
        widx = 0
        cached, lookup = self.model.cached_lookup()
        normalize = self.normalizer.normalize
        iter_words = self.normalizer.iter_words
        pieces = ((0, text, None),) if split_special_tokens else self.split_special(text)
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
                for m in iter_words(norm):
                    p = cached(m.group())
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
            for m in iter_words(norm):
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
        return Encoding(ids, offsets, words, [type_id] * len(ids), id_to_token=self.id_to_token)

    def split_special(self, text):
        """(start, piece, special id or None) for the pieces between special-token strings."""
        if self._special_finditer is None or not any(c in text for c in self._special_first_chars):
            return ((0, text, None),)
        out = []
        last = 0
        for m in self._special_finditer(text):
            a, b = m.span()
            if a > last:
                out.append((last, text[last:a], None))
            out.append((a, m.group(), self.special_ids[m.group()]))
            last = b
        if last < len(text):
            out.append((last, text[last:], None))
        return out

    def encode_input(self, seq, type_id=0, is_split_into_words=False, split_special_tokens=False):
        """Encoding of a text, or with is_split_into_words of a list of words (each encoded on its
        own, offsets relative to that word, word index = its position)."""
        if not is_split_into_words:
            return self.encode_sequence(seq, type_id, None, split_special_tokens)
        if not seq:
            return Encoding([], [], [], id_to_token=self.id_to_token)
        return merge([self.encode_sequence(w, type_id, i, split_special_tokens) for i, w in enumerate(seq)])

    # -- a batch ------------------------------------------------------------------------------

    def encode_batch(self, items, cls_id, sep_id, add_special_tokens=True, truncation="do_not_truncate",
                     max_length=None, stride=0, truncation_side="right", is_split_into_words=False,
                     split_special_tokens=False):
        """One Encoding per (first, second or None) item: encoded, truncated to `max_length` tokens
        (special tokens included) with `truncation`, then put in the [CLS] A [SEP] (B [SEP]) template."""
        encodings = []
        for a, b in items:
            enc_a = self.encode_input(a, 0, is_split_into_words, split_special_tokens)
            enc_b = self.encode_input(b, 1, is_split_into_words, split_special_tokens) if b is not None else None
            if truncation != "do_not_truncate":
                n_added = n_special_tokens(b is not None) if add_special_tokens else 0
                truncate_pair(enc_a, enc_b, max_length - n_added, truncation, stride, truncation_side)
            encodings.append(self.post_process(enc_a, enc_b, cls_id, sep_id, add_special_tokens))
        return encodings

    def post_process(self, enc_a, enc_b, cls_id, sep_id, add_special_tokens=True):
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
        lookup = self.id_to_token

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
