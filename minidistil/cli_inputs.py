"""The command line's input files: one contract for `--input FILE`, `--input -` and a piped stdin.

    lines = read_lines("texts.txt", "--input file 'texts.txt'", errors="strict")

- Bytes are decoded as UTF-8 (a leading byte-order mark is dropped). A line that is not UTF-8 is an
  InputError naming the line, the column and the bytes, unless errors="replace" (`--errors replace`),
  which reads such bytes as U+FFFD, the way Python's decoder does.
- Lines end at "\\n" (a "\\r" before it is dropped too). Every line is kept, blank ones included, so
  that output line N answers input line N; the commands give a blank line the result null.
- No lines at all (an empty file, an empty pipe) is an InputError: running nothing is not success.

Everything is read before the model loads, so a bad file fails fast and the progress bar knows its total.
"""

from __future__ import annotations

import sys

from .errors import MinidistilError

DECODE_ERRORS = ("strict", "replace")
BOM = b"\xef\xbb\xbf"


class InputError(MinidistilError, ValueError):
    """An input file cannot be read or decoded; the message names the file and the line."""


def is_blank(item):
    """True for a blank input line (empty or only whitespace): it gets the result null, not a model run."""
    return isinstance(item, str) and not item.strip()


def _read_bytes(path, where):
    try:
        if path == "-":
            stream = sys.stdin
            buffer = getattr(stream, "buffer", None)
            # A text stream without bytes below it (an embedding program's StringIO) is decoded already.
            return buffer.read() if buffer is not None else stream.read().encode("utf-8", "surrogatepass")
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as exc:
        raise InputError(f"cannot read {where}: {exc.strerror or exc}") from exc


def decode_line(raw, number, where, errors="strict"):
    """Line `number` (1-based) of `where` as text; a non-UTF-8 line is an InputError unless errors="replace"."""
    try:
        return raw.decode("utf-8", errors)
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.end].hex(" ")
        raise InputError(
            f"{where} line {number} is not UTF-8 (byte(s) {bad} at column {exc.start + 1}: {exc.reason}); "
            "convert it to UTF-8, or pass --errors replace to read such bytes as U+FFFD"
        ) from None


def read_lines(path, where, errors="strict"):
    """Every line of file `path` ('-': stdin) as text, in order (see the module docstring).

    where: how the messages name the source, e.g. "stdin" or "--input file 'x.txt'".
    """
    if errors not in DECODE_ERRORS:
        raise ValueError(f"errors must be one of {', '.join(DECODE_ERRORS)}, got {errors!r}")
    data = _read_bytes(path, where)
    if data.startswith(BOM):
        data = data[len(BOM) :]
    if not data:
        raise InputError(f"{where} is empty: no input lines to run")
    raws = data.split(b"\n")
    if raws[-1] == b"":  # the newline that ends the last line starts no line of its own
        raws.pop()
    return [decode_line(raw.removesuffix(b"\r"), n, where, errors) for n, raw in enumerate(raws, 1)]


def read_text(path, where, errors="strict"):
    """The whole of file `path` as text (e.g. `--context @FILE`), with read_lines' decoding and messages."""
    return "\n".join(read_lines(path, where, errors))
