"""The WordPiece model of the reference: greedy longest-match-first pieces of one word, cached.

    >>> model = WordPiece({"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, "able": 4})
    >>> model.tokenize("unaffable")
    ((1, 2, 3), ((0, 2), (2, 5), (5, 9)))
    >>> model.tokenize("unknown")  # a piece is missing: the whole word is [UNK]
    ((0,), ((0, 7),))
"""

from __future__ import annotations

from ..errors import TokenizerError


class WordPiece:
    """Greedy longest-match-first WordPiece with `##` continuations; a word longer than
    `max_input_chars_per_word` characters, or with any piece not in the vocabulary, is one [UNK].

    `lookup(word)` is the hot path's form of `tokenize`: an int id when the word is a single piece
    covering it all (most words), else (ids, offsets); results are cached.

        >>> model = WordPiece({"[UNK]": 0, "play": 1, "##ing": 2})
        >>> model.lookup("play"), model.lookup("playing")
        (1, ((1, 2), ((0, 4), (4, 7))))
    """

    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=100, prefix="##", cache_size=200_000):
        self.vocab = vocab
        self.unk_token = unk_token
        if unk_token not in vocab:
            raise TokenizerError(f"the unknown token {unk_token!r} is not in the vocabulary")
        self.unk_id = vocab[unk_token]
        self.max_input_chars_per_word = max_input_chars_per_word
        self.prefix = prefix
        self._max_piece = max(len(t) for t in vocab)
        self._cache = {}
        self._cache_size = cache_size

    def tokenize(self, word):
        """(ids, offsets) of a word: offsets are (start, end) in characters of the word."""
        pieces = self.lookup(word)
        return ((pieces,), ((0, len(word)),)) if type(pieces) is int else pieces

    def lookup(self, word):
        """The cached form used on the hot path: an int id when the word is a single piece
        (covering it all), else (ids, offsets)."""
        pieces = self._cache.get(word)
        if pieces is None:
            pieces = self._tokenize(word)
            if len(pieces[0]) == 1 and pieces[1][0] == (0, len(word)):
                pieces = pieces[0][0]
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[word] = pieces
        return pieces

    def cached_lookup(self):
        """(cached, lookup) for a loop over many words: `cached(word)` is the cache's own dict.get,
        which gives `lookup`'s result for a word seen before and None for a new one (then call
        `lookup`). A word seen before, nearly every word of running text, then costs one C-level
        dict lookup and no Python-level call (calling `lookup` for every word instead: 5% more
        instructions per pass over SQuAD dev text, counted with valgrind's cachegrind).

            >>> cached, lookup = WordPiece({"[UNK]": 0, "a": 1}).cached_lookup()
            >>> cached("a"), lookup("a"), cached("a")
            (None, 1, 1)
        """
        return self._cache.get, self.lookup

    def _tokenize(self, word):
        n = len(word)
        unk = ((self.unk_id,), ((0, n),))
        if n > self.max_input_chars_per_word:
            return unk
        vocab, prefix, max_piece = self.vocab, self.prefix, self._max_piece
        ids, offsets = [], []
        start = 0
        while start < n:
            # Longer candidates cannot be in the vocabulary; skipping them changes nothing.
            end = min(n, start + max_piece)
            while start < end:
                sub = word[start:end] if start == 0 else prefix + word[start:end]
                i = vocab.get(sub)
                if i is not None:
                    ids.append(i)
                    offsets.append((start, end))
                    break
                end -= 1
            else:
                return unk
            start = end
        return tuple(ids), tuple(offsets)
