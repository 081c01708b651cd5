"""WordPiece vocabulary and the greedy longest-match-first model of the reference."""

from __future__ import annotations

import os

from .errors import TokenizerError


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


class WordPiece:
    """Greedy longest-match-first WordPiece with `##` continuations; a word longer than
    `max_input_chars_per_word` characters, or with any piece not in the vocabulary, is one [UNK]."""

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
