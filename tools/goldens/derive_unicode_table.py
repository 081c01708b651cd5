#!/usr/bin/env python
"""Derive the character tables of the reference fast tokenizer by asking it about every code point.

The reference (the Rust `tokenizers` library behind transformers' DistilBertTokenizerFast) classifies
characters with Unicode tables of its own, older or newer than Python's `unicodedata` depending on
the table. Rather than guessing, this script asks the reference's BertNormalizer, NFD and Lowercase
normalizers and its BertPreTokenizer about each of the 1,112,064 scalar values and writes what they do
to `minidistil/data/bert_unicode.json`:

  removed     dropped by clean_text (NUL, U+FFFD, and what the reference calls "other", category C*)
  space       turned into " " by clean_text (Rust's White_Space, tab, newline, carriage return)
  chinese     padded with spaces by handle_chinese_chars
  nfd         canonical decomposition (Hangul syllables are decomposed by rule and not listed)
  ccc         canonical combining class (non-zero only), which orders marks after decomposition
  mn          dropped by strip_accents after decomposition (the reference's "nonspacing mark")
  lower       lowercase mapping where it is not the character itself
  punct       isolated by BertPreTokenizer
  split_space removed (and split on) by BertPreTokenizer

Code-point sets are stored as inclusive [first, last] ranges. The tables are complete, not a diff
against `unicodedata`, so the tokenizer behaves the same on every Python version (3.10 ships Unicode 13,
3.11 Unicode 14, 3.12 Unicode 15). The script also prints where the reference differs from this
Python's `unicodedata` (the README quotes that summary), and with --check verifies
`minidistil.tokenization.normalizer` against the reference on every code point.

Usage (dev environment with transformers/tokenizers installed):
    python tools/goldens/derive_unicode_table.py            # derive, write, check
    python tools/goldens/derive_unicode_table.py --check    # only check the committed table
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "minidistil" / "data" / "bert_unicode.json"

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def scalar_values():
    """Every Unicode scalar value (surrogates cannot cross into Rust)."""
    return [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]


def to_ranges(cps):
    ranges = []
    for cp in sorted(cps):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return ranges


def to_valued_ranges(mapping):
    ranges = []
    for cp in sorted(mapping):
        v = mapping[cp]
        if ranges and ranges[-1][1] == cp - 1 and ranges[-1][2] == v:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, v])
    return ranges


def hangul_nfd(cp):
    s = cp - HANGUL_FIRST
    lead, vowel, tail = 0x1100 + s // 588, 0x1161 + (s % 588) // 28, 0x11A7 + s % 28
    return [lead, vowel] + ([tail] if tail != 0x11A7 else [])


def derive():
    import tokenizers
    from tokenizers import normalizers, pre_tokenizers

    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    chinese = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    nfd = normalizers.NFD()
    lower = normalizers.Lowercase()
    pre = pre_tokenizers.BertPreTokenizer()

    removed, space, chin, mn, punct, split_space = set(), set(), set(), set(), set(), set()
    decomp, lowers, nonstarter = {}, {}, []
    for cp in scalar_values():
        c = chr(cp)
        r = clean.normalize_str(c)
        if r == "":
            removed.add(cp)
        elif r == " " and c != " ":
            space.add(cp)
        else:
            assert r == c, (hex(cp), r)
        if chinese.normalize_str(c) == f" {c} ":
            chin.add(cp)
        d = nfd.normalize_str(c)
        if d != c:
            if HANGUL_FIRST <= cp <= HANGUL_LAST:
                assert [ord(x) for x in d] == hangul_nfd(cp), hex(cp)
            else:
                decomp[cp] = [ord(x) for x in d]
        else:
            if strip.normalize_str(c) == "":
                mn.add(cp)
            # A non-starter is reordered behind U+0316 (ccc 220) or before U+0301 (ccc 230).
            if nfd.normalize_str(f"\u0301{c}\u0316") != f"\u0301{c}\u0316":
                nonstarter.append(cp)
        lo = lower.normalize_str(c)
        if lo != c:
            lowers[cp] = [ord(x) for x in lo]
        parts = [p for p, _ in pre.pre_tokenize_str(f"a{c}b")]
        if parts == ["a", c, "b"]:
            punct.add(cp)
        elif parts == ["a", "b"]:
            split_space.add(cp)
        else:
            assert parts == [f"a{c}b"], (hex(cp), parts)

    ccc = derive_ccc(nfd, nonstarter)
    return {
        "meta": {
            "what": "character classes of the reference fast tokenizer (BertNormalizer, BertPreTokenizer)",
            "written_by": "python tools/goldens/derive_unicode_table.py",
            "tokenizers": tokenizers.__version__,
            "transformers": _transformers_version(),
            "python": sys.version.split()[0],
            "python_unidata": unicodedata.unidata_version,
            "date": datetime.date.today().isoformat(),
            "format": "code-point sets are inclusive [first, last] ranges; ccc rows are [first, last, class]",
        },
        "removed": to_ranges(removed),
        "space": to_ranges(space),
        "chinese": to_ranges(chin),
        "nfd": {str(k): v for k, v in sorted(decomp.items())},
        "ccc": to_valued_ranges(ccc),
        "mn": to_ranges(mn),
        "lower": {str(k): v for k, v in sorted(lowers.items())},
        "punct": to_ranges(punct),
        "split_space": to_ranges(split_space),
    }


def _transformers_version():
    try:
        import transformers

        return transformers.__version__
    except ImportError:
        return None


def derive_ccc(nfd, nonstarters):
    """Exact combining class of each reference non-starter, found by sorting it against marks of known class.

    Canonical classes never change once assigned, so the first code point with each class in
    `unicodedata` serves as the yardstick for that class. `c + m` is reordered iff ccc(c) > ccc(m),
    `m + c` iff ccc(c) < ccc(m); only equal classes keep both orders.
    """
    known = set(nonstarters)
    markers = {}
    for cp in range(0x110000):
        v = unicodedata.combining(chr(cp))
        if v and v not in markers and cp in known:
            markers[v] = chr(cp)
    # The yardsticks must sort among themselves as their classes say.
    for v, m in markers.items():
        for w, n in markers.items():
            if v < w:
                assert nfd.normalize_str(n + m) == m + n and nfd.normalize_str(m + n) == m + n, (v, w)
    out = {}
    for cp in nonstarters:
        c = chr(cp)
        found = None
        for v, m in sorted(markers.items()):
            if nfd.normalize_str(c + m) == c + m and nfd.normalize_str(m + c) == m + c:
                found = v
                break
        assert found is not None, f"combining class of U+{cp:04X} is none of {sorted(markers)}"
        out[cp] = found
    return out


# ----------------------------------------------------------------------------------------------
# Summary of differences with this Python's unicodedata (for the README and the closing note)


def summarize(table):
    def expand(ranges):
        return {cp for a, b in ranges for cp in range(a, b + 1)}

    def fmt(cps, n=12):
        cps = sorted(cps)
        head = ", ".join(f"U+{cp:04X}" for cp in cps[:n])
        return f"{len(cps)} ({head}{', ...' if len(cps) > n else ''})"

    cat = lambda cp: unicodedata.category(chr(cp))  # noqa: E731
    removed = expand(table["removed"])
    py_removed = {cp for cp in scalar_values() if cp in (0, 0xFFFD) or (cat(cp).startswith("C") and chr(cp) not in "\t\n\r")}
    space = expand(table["space"])
    py_space = {cp for cp in scalar_values() if chr(cp) in "\t\n\r " or cat(cp) == "Zs"} - {0x20}
    mn = expand(table["mn"])
    nfd_same = {cp for cp in scalar_values() if str(cp) not in table["nfd"] and not HANGUL_FIRST <= cp <= HANGUL_LAST}
    py_mn = {cp for cp in nfd_same if cat(cp) == "Mn"}
    punct = expand(table["punct"])
    py_punct = {cp for cp in scalar_values() if (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126) or cat(cp).startswith("P")}
    nfd_diff = {
        cp
        for cp in scalar_values()
        if not HANGUL_FIRST <= cp <= HANGUL_LAST
        and [ord(x) for x in unicodedata.normalize("NFD", chr(cp))] != table["nfd"].get(str(cp), [cp])
    }
    lower_diff = {cp for cp in scalar_values() if [ord(x) for x in chr(cp).lower()] != table["lower"].get(str(cp), [cp])}
    ccc = {cp: v for a, b, v in table["ccc"] for cp in range(a, b + 1)}
    ccc_diff = {cp for cp in nfd_same if unicodedata.combining(chr(cp)) != ccc.get(cp, 0)}
    rows = [
        ("removed by clean_text, kept by a unicodedata clone", removed - py_removed),
        ("kept by clean_text, removed by a unicodedata clone", py_removed - removed),
        ("whitespace only for the reference", space - py_space),
        ("whitespace only for unicodedata", py_space - space),
        ("stripped as Mn only by the reference", mn - py_mn),
        ("Mn in unicodedata, kept by the reference", py_mn - mn),
        ("punctuation only for the reference", punct - py_punct),
        ("punctuation in unicodedata, not split by the reference", py_punct - punct),
        ("NFD differs", nfd_diff),
        ("lowercase differs", lower_diff),
        ("combining class differs", ccc_diff),
    ]
    print(f"differences from Python {sys.version.split()[0]} unicodedata {unicodedata.unidata_version}:")
    for name, cps in rows:
        print(f"  {name}: {fmt(cps)}")


# ----------------------------------------------------------------------------------------------
# Check minidistil.tokenization.normalizer against the reference on every code point


def check():
    sys.path.insert(0, str(ROOT))
    from tokenizers import normalizers, pre_tokenizers

    from minidistil.tokenization import BertNormalizer

    pre = pre_tokenizers.BertPreTokenizer()
    bad = 0
    configs = [(lc, sa, ch) for lc in (True, False) for sa in (None, True, False) for ch in (True, False)]
    cps = scalar_values()
    for lc, sa, ch in configs:
        ref = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=ch, strip_accents=sa, lowercase=lc)
        ours = BertNormalizer(lowercase=lc, strip_accents=sa, handle_chinese_chars=ch)
        n = 0
        for cp in cps:
            c = chr(cp)
            # The character between two letters exercises the pre-tokenizer's splitting as well.
            text = f"a{c}b"
            want = ref.normalize_str(text)
            got, align = ours.normalize(text)
            want_words = [w for w, _ in pre.pre_tokenize_str(want)]
            got_words = [got[s:e] for s, e in ours.words(got)]
            if got != want or got_words != want_words:
                n += 1
                if n <= 5:
                    print(f"  lowercase={lc} strip_accents={sa} chinese={ch} U+{cp:04X}: want {want!r} {want_words} got {got!r} {got_words}")
        print(f"check lowercase={lc} strip_accents={sa} chinese={ch}: {len(cps) - n} of {len(cps)} code points identical")
        bad += n
    # Canonical reordering across characters: every ordered pair of distinct combining classes.
    ref = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=False)
    ours = BertNormalizer(lowercase=False, strip_accents=True, handle_chinese_chars=True)
    table = json.loads(OUT.read_text())
    reps = {}
    for a, _, v in table["ccc"]:
        reps.setdefault(v, chr(a))
    n = 0
    for x in reps.values():
        for y in reps.values():
            text = f"a{x}{y}\u00e1{y}{x}"
            if ours.normalize(text)[0] != ref.normalize_str(text):
                n += 1
    print(f"check reordering: {len(reps) ** 2 - n} of {len(reps) ** 2} mark pairs identical")
    bad += n
    return bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only check the committed table against the reference")
    ap.add_argument("--no-check", action="store_true", help="derive and write, skip the check")
    args = ap.parse_args(argv)
    if not args.check:
        table = derive()
        OUT.parent.mkdir(parents=True, exist_ok=True)
        # One key per line keeps diffs of the data file readable.
        lines = ["{"] + [f"{json.dumps(k)}:{json.dumps(v, separators=(',', ':'))}," for k, v in table.items()]
        lines[-1] = lines[-1].rstrip(",")
        OUT.write_text("\n".join(lines) + "\n}\n")
        print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes)")
        summarize(table)
    else:
        summarize(json.loads(OUT.read_text()))
    if not args.no_check:
        bad = check()
        print("check:", "all identical" if bad == 0 else f"{bad} differences")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
