"""Normalisation and pre-tokenisation exactly as the reference fast tokenizer's BertNormalizer + BertPreTokenizer.

The reference runs, on each piece of text between special tokens:

1. clean_text: drop NUL, U+FFFD and "other" characters (control, format, private use; not unassigned
   ones), turn whitespace (tab, newline, carriage return, Rust's White_Space) into a space;
2. handle_chinese_chars: put a space before and after each CJK ideograph;
3. strip_accents (defaults to lowercase): canonical decomposition (NFD, with canonical reordering of
   combining marks), then drop nonspacing marks;
4. lowercase, character by character (so a final capital sigma becomes "σ", not "ς"). The slow Python
   reference lowercases *before* stripping accents and applies NFC first; we follow the fast one,
   where e.g. "İ" gives "i" when accents are stripped but "i̇" (i + U+0307) when they are not;
5. split on whitespace (dropped) and on punctuation (kept as one-character words).

The character classes come from `data/bert_unicode.json`, derived from the reference itself by
`tools/goldens/derive_unicode_table.py` (its Unicode tables are not Python's `unicodedata`: e.g. it keeps
unassigned code points and some newer format characters, does not strip ~380 newer marks, does not
split on ~100 newer punctuation characters, and treats U+2028/U+2029 as whitespace).

Alignment: every normalised character comes from exactly one original character. `normalize` returns
the normalised string and, when it is not the identity, a list giving for each normalised character
the index of the original character it came from, reproducing the reference's offset tracking
(`NormalizedString::transform`), including its positional rule after canonical reordering.

    >>> norm = BertNormalizer()
    >>> norm.normalize("Héllo, World")  # one character for one: no alignment needed
    ('hello, world', None)
    >>> norm.normalize("a\u00adb中")  # soft hyphen dropped, spaces around the ideograph
    ('ab 中 ', [0, 2, 3, 3, 3])
    >>> norm.words("hello, world")
    [(0, 5), (5, 6), (7, 12)]
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from functools import lru_cache
from importlib import resources

_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3
_ASCII_SPACES = str.maketrans("\t\n\r", "   ")


class _RangeSet:
    """A set of code points stored as sorted inclusive ranges."""

    __slots__ = ("ranges", "_starts", "_ends")

    def __init__(self, ranges):
        self.ranges = sorted(tuple(r[:2]) for r in ranges)
        self._starts = [a for a, _ in self.ranges]
        self._ends = [b for _, b in self.ranges]

    def __contains__(self, cp):
        i = bisect_right(self._starts, cp) - 1
        return i >= 0 and cp <= self._ends[i]


class UnicodeTables:
    """The reference's character classes (see tools/goldens/derive_unicode_table.py for what each one is)."""

    def __init__(self, data):
        # Lone surrogates cannot reach the reference (Rust strings are UTF-8); they are "other"
        # characters (category Cs), so clean_text drops them like the other ones.
        self.removed = _RangeSet(data["removed"] + [[0xD800, 0xDFFF]])
        self.space = _RangeSet(data["space"])
        self.chinese = _RangeSet(data["chinese"])
        self.mn = _RangeSet(data["mn"])
        self.punct = _RangeSet(data["punct"])
        self.split_space = _RangeSet(data["split_space"])
        self.nfd = {int(k): "".join(map(chr, v)) for k, v in data["nfd"].items()}
        self.lower = {int(k): "".join(map(chr, v)) for k, v in data["lower"].items()}
        self.ccc_ranges = [tuple(r) for r in data["ccc"]]
        self._ccc_starts = [r[0] for r in self.ccc_ranges]
        self.meta = data.get("meta", {})

    def ccc(self, cp):
        i = bisect_right(self._ccc_starts, cp) - 1
        if i >= 0 and cp <= self.ccc_ranges[i][1]:
            return self.ccc_ranges[i][2]
        return 0

    def decompose(self, ch):
        """Canonical decomposition of one character (itself when it has none)."""
        cp = ord(ch)
        if _HANGUL_FIRST <= cp <= _HANGUL_LAST:
            s = cp - _HANGUL_FIRST
            out = chr(0x1100 + s // 588) + chr(0x1161 + (s % 588) // 28)
            return out + chr(0x11A7 + s % 28) if s % 28 else out
        return self.nfd.get(cp, ch)


@lru_cache(maxsize=1)
def tables() -> UnicodeTables:
    text = resources.files("minidistil").joinpath("data", "bert_unicode.json").read_text(encoding="utf-8")
    return UnicodeTables(json.loads(text))


def _char_class(ranges):
    """A regular-expression character class body for inclusive code-point ranges."""
    parts = []
    for a, b in ranges:
        parts.append(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}")
    return "".join(parts)


def _merge_ranges(ranges):
    out = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


@lru_cache(maxsize=None)
def _word_regex():
    """Words of a normalised string: one punctuation character, or a run of non-space non-punctuation."""
    t = tables()
    p, s = _char_class(t.punct.ranges), _char_class(t.split_space.ranges)
    return re.compile(f"[{p}]|[^{p}{s}]+")


class _Expansions(dict):
    """char -> normalised text, filled on first use; doubles as a `str.translate` table."""

    def __init__(self, fn):
        super().__init__()
        self._fn = fn

    def __missing__(self, key):
        # str.translate looks characters up by code point, the per-character loop by str.
        ch = chr(key) if isinstance(key, int) else key
        value = self._fn(ch)
        self[key] = value
        return value


class BertNormalizer:
    """BertNormalizer (clean_text always on) + BertPreTokenizer of the reference fast tokenizer."""

    def __init__(self, lowercase=True, strip_accents=None, handle_chinese_chars=True):
        self.lowercase = bool(lowercase)
        # strip_accents=None follows lowercase, as in the reference.
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.handle_chinese_chars = bool(handle_chinese_chars)
        t = self._t = tables()
        self._expansions = _Expansions(self._expand)
        self._word_finditer = _word_regex().finditer

        # Characters whose normalised form is not exactly one character need the alignment path;
        # everything else maps one to one and goes through str.translate (or str.lower for ASCII).
        complex_ranges = [tuple(r) for r in t.removed.ranges]
        if self.handle_chinese_chars:
            complex_ranges += t.chinese.ranges
        reorder = []
        if self.strip_accents:
            complex_ranges += t.mn.ranges
            complex_ranges.append((_HANGUL_FIRST, _HANGUL_LAST))
            # A kept non-starter (combining class > 0 but not a nonspacing mark) can be moved by
            # canonical reordering, which changes alignments: such text takes the exact path.
            kept_nonstarters = {
                cp for a, b, _ in t.ccc_ranges for cp in range(a, b + 1) if cp not in t.mn
            }
            reorder = [(cp, cp) for cp in sorted(kept_nonstarters)]
            for cp, d in t.nfd.items():
                if any(ord(x) in kept_nonstarters for x in d):
                    reorder.append((cp, cp))
                elif len(self._expand(chr(cp))) != 1:
                    complex_ranges.append((cp, cp))
        if self.lowercase:
            for cp, lo in t.lower.items():
                if len(lo) != 1 and not (self.strip_accents and cp in t.nfd):
                    complex_ranges.append((cp, cp))
        complex_ranges = _merge_ranges(complex_ranges + reorder)
        self._complex_search = re.compile(f"[{_char_class(complex_ranges)}]").search
        ascii_complex = [(a, min(b, 127)) for a, b in complex_ranges if a < 128]
        self._ascii_complex_search = re.compile(f"[{_char_class(ascii_complex)}]").search
        self._reorder_search = (
            re.compile(f"[{_char_class(_merge_ranges(reorder))}]").search if reorder else None
        )

    # -- one character ------------------------------------------------------------------------

    def _expand(self, ch):
        """Normalised text of one character on its own (no canonical reordering with neighbours)."""
        t = self._t
        cp = ord(ch)
        if cp in t.removed:
            return ""
        if cp in t.space:
            return " "
        out = f" {ch} " if self.handle_chinese_chars and cp in t.chinese else ch
        if self.strip_accents:
            out = "".join(x for x in "".join(t.decompose(c) for c in out) if ord(x) not in t.mn)
        if self.lowercase:
            out = "".join(t.lower.get(ord(c), c) for c in out)
        return out

    # -- whole pieces ---------------------------------------------------------------------------

    def normalize(self, text):
        """(normalised text, alignment): alignment is None when it is the identity, else a list
        giving for each normalised character the index of its original character in `text`."""
        if text.isascii():
            if self._ascii_complex_search(text) is None:
                out = text.lower() if self.lowercase else text
                if "\n" in out or "\t" in out or "\r" in out:
                    out = out.translate(_ASCII_SPACES)
                return out, None
        elif self._complex_search(text) is None:
            return text.translate(self._expansions), None
        if self._reorder_search is not None and self._reorder_search(text) is not None:
            return self._normalize_exact(text)
        exp = self._expansions
        parts = []
        align = []
        for i, ch in enumerate(text):
            e = exp[ch]
            if e:
                parts.append(e)
                if len(e) == 1:
                    align.append(i)
                else:
                    align.extend([i] * len(e))
        return "".join(parts), align

    def _normalize_exact(self, text):
        """Step-by-step emulation of the reference, with canonical reordering and its alignment rule.

        In the reference's `transform`, a character that replaces one takes the alignment of the next
        character consumed from the previous string, and an inserted character that of the last one
        consumed. NFD marks the first character of each decomposition as a replacement and the rest as
        insertions, then reorders marks together with those flags, so after reordering alignments are
        positional rather than following the characters.
        """
        t = self._t
        chars, align = [], []
        for i, ch in enumerate(text):
            cp = ord(ch)
            if cp in t.removed:
                continue
            if cp in t.space:
                ch = " "
            if self.handle_chinese_chars and cp in t.chinese:
                chars += [" ", ch, " "]
                align += [i, i, i]
            else:
                chars.append(ch)
                align.append(i)
        # Decompose, flagging insertions.
        items = []
        for ch in chars:
            d = t.decompose(ch)
            items.append([d[0], False, t.ccc(ord(d[0]))])
            for x in d[1:]:
                items.append([x, True, t.ccc(ord(x))])
        # Canonical ordering: stable sort of every run of non-starters by combining class.
        i, n = 0, len(items)
        while i < n:
            if items[i][2] == 0:
                i += 1
                continue
            j = i
            while j < n and items[j][2] != 0:
                j += 1
            items[i:j] = sorted(items[i:j], key=lambda it: it[2])
            i = j
        out, out_align = [], []
        consumed = 0
        for ch, inserted, _ in items:
            if not inserted:
                a = align[consumed]
                consumed += 1
            else:
                # consumed == 0 cannot happen: the first item of a decomposition is never an
                # insertion and reordering never moves an insertion before its own first item.
                a = align[consumed - 1]
            if ord(ch) in t.mn:
                continue
            if self.lowercase:
                lo = t.lower.get(ord(ch), ch)
                out.append(lo)
                out_align.extend([a] * len(lo))
            else:
                out.append(ch)
                out_align.append(a)
        return "".join(out), out_align

    def iter_words(self, normalized):
        """A `re.Match` for each pre-token of a normalised string: the tokenizer's hot path reads
        the word, its start and its end from the match without building a list first."""
        return self._word_finditer(normalized)

    def words(self, normalized):
        """(start, end) of each pre-token of a normalised string."""
        return [m.span() for m in self.iter_words(normalized)]

    def normalize_str(self, text):
        """The normalised text only (like the reference's `normalize_str`)."""
        return self.normalize(text)[0]
