"""Input files as shards of rows: plain text lines, JSON lines, or a Parquet file.

A row's id is its row number in the input: the 0-based line number for text and JSON lines (blank
lines hold no row and are skipped, so ids keep pointing at their line), the row index for Parquet.
`plan_shards` reads the file once, checks every row (a bad row fails before any work starts) and
cuts it into shards of `shard_rows` rows: byte ranges of the file for lines, row ranges for Parquet,
so that a worker reads only its own shard. `read_shard` gives one shard's ids and texts.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from ..extras import import_extra
from .errors import InputFileError

FORMATS = ("text", "jsonl", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
PARQUET_CHUNK_ROWS = 65536  # rows checked at a time while planning a Parquet file: bounded memory


@dataclass(frozen=True)
class Shard:
    index: int
    start: int  # first byte (lines) or first row (Parquet) of the shard
    stop: int  # one past its last byte / row
    first_id: int  # id of the row at `start`
    rows: int  # rows it holds


def input_format(path):
    """'jsonl' for .jsonl/.ndjson/.json, 'parquet' for .parquet/.pq, else 'text' (one text per line)."""
    return _EXTENSIONS.get(Path(path).suffix.lower(), "text")


def _lines(path, start=0, stop=None):
    """(line number, byte offset, text) of every non-blank line of `path` from byte `start` to `stop`."""
    with open(path, "rb") as stream:
        stream.seek(start)
        offset = start
        for number, raw in enumerate(stream):
            if stop is not None and offset >= stop:
                return
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise InputFileError(f"{path}: byte {offset + exc.start} is not UTF-8 ({exc.reason})") from None
            if text.strip():
                yield number, offset, text
            offset += len(raw)


def _line_text(fmt, line, path, line_number, text_column):
    """The text of one non-blank line: the line itself, or field `text_column` of its JSON object."""
    if fmt == "text":
        return line
    where = f"{path} line {line_number + 1}"
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise InputFileError(f"{where}: not JSON ({exc})") from None
    if not isinstance(item, dict):
        raise InputFileError(f"{where}: expected a JSON object with a {text_column!r} field, got {type(item).__name__}")
    if text_column not in item:
        raise InputFileError(f"{where}: no {text_column!r} field (fields: {', '.join(item) or 'none'})")
    text = item[text_column]
    if not isinstance(text, str):
        raise InputFileError(f"{where}: field {text_column!r} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputFileError(f"{where}: field {text_column!r} is empty")
    return text


def _plan_lines(path, fmt, text_column, shard_rows):
    shards, rows, start, first_id = [], 0, 0, 0
    for number, offset, line in _lines(path):
        _line_text(fmt, line, path, number, text_column)
        if rows == shard_rows:
            shards.append(Shard(len(shards), start, offset, first_id, rows))
            rows = 0
        if rows == 0:
            start, first_id = offset, number
        rows += 1
    if rows:
        shards.append(Shard(len(shards), start, Path(path).stat().st_size, first_id, rows))
    return shards


def _parquet_text_column(path, text_column):
    pq = import_extra("pyarrow.parquet", "ray", "reading Parquet input")
    pa = import_extra("pyarrow", "ray", "reading Parquet input")
    try:
        file = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputFileError(f"{path}: not a readable Parquet file ({exc})") from None
    schema = file.schema_arrow
    if text_column not in schema.names:
        raise InputFileError(f"{path}: no column {text_column!r} (columns: {', '.join(schema.names)})")
    kind = schema.field(text_column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InputFileError(f"{path}: column {text_column!r} must be a string column, got {kind}")
    return file


def _check_parquet_chunk(texts, first_row, path, text_column):
    """Every value of the Arrow string array `texts` (rows first_row...) is present and not blank."""
    pc = import_extra("pyarrow.compute", "ray", "reading Parquet input")
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(texts), ""), True)  # null counts as blank
    if pc.any(blank).as_py():
        row = pc.index(blank, True).as_py()
        problem = "is null" if not texts[row].is_valid else "is empty"
        raise InputFileError(f"{path} row {first_row + row}: column {text_column!r} {problem}")


def _plan_parquet(path, text_column, shard_rows):
    file = _parquet_text_column(path, text_column)
    first_row = 0
    for chunk in file.iter_batches(batch_size=PARQUET_CHUNK_ROWS, columns=[text_column]):
        _check_parquet_chunk(chunk.column(0), first_row, path, text_column)
        first_row += chunk.num_rows
    total = file.metadata.num_rows
    return [Shard(n, start, min(start + shard_rows, total), start, min(shard_rows, total - start))
            for n, start in enumerate(range(0, total, shard_rows))]


def plan_shards(path, fmt, text_column, shard_rows):
    """Check every row of `path` and cut it into shards of `shard_rows` rows (the last may hold fewer)."""
    if fmt == "parquet":
        return _plan_parquet(path, text_column, shard_rows)
    return _plan_lines(path, fmt, text_column, shard_rows)


def _read_parquet_rows(path, text_column, start, stop):
    """The texts of rows [start, stop) of a Parquet file, reading only the row groups that hold them."""
    file = _parquet_text_column(path, text_column)
    texts, first = [], 0
    for group in range(file.metadata.num_row_groups):
        size = file.metadata.row_group(group).num_rows
        if first < stop and first + size > start:
            values = file.read_row_group(group, columns=[text_column]).column(0)
            texts.extend(values.slice(max(start - first, 0), min(stop, first + size) - max(start, first)).to_pylist())
        first += size
    return texts


def read_shard(path, fmt, text_column, shard):
    """(ids, texts) of the rows of `shard`, checked as plan_shards checked them."""
    if fmt == "parquet":
        texts = _read_parquet_rows(path, text_column, shard.start, shard.stop)
        _check_parquet_chunk(import_extra("pyarrow", "ray", "reading Parquet input").array(texts, type="string"),
                             shard.start, path, text_column)
        ids = list(range(shard.start, shard.stop))
    else:
        ids, texts = [], []
        for number, _, line in _lines(path, shard.start, shard.stop):
            ids.append(shard.first_id + number)
            texts.append(_line_text(fmt, line, path, shard.first_id + number, text_column))
    if len(ids) != shard.rows:
        raise InputFileError(f"{path} changed while it was read: shard {shard.index} has {len(ids)} rows, "
                             f"planned {shard.rows}")
    return ids, texts
