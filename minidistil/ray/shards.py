"""The output directory of an embedding job, and why every row ends up in it exactly once.

    DIR/_manifest.json        the job (input file, its size and mtime, model, shard size) and its shards
    DIR/part-00000.parquet    shard 0: columns id, text, embedding; one file per shard
    DIR/_SUCCESS              written last: rows and shards, once every part has been checked

A part file appears only complete: it is written under a temporary name in the same directory and
renamed into place (os.replace, atomic on POSIX filesystems). So a part that exists is finished, a
rerun of the same job skips it, and a shard done twice (a worker killed after the rename, a retried
task) replaces its part with the same rows: the rows of shard k live in part k and nowhere else.
Readers of the directory (pyarrow.dataset, pandas, ray.data.read_parquet) ignore names starting with
'_' or '.', so the manifest and unfinished temporaries are never read as data.
"""

import json
import os
import uuid
from dataclasses import asdict
from pathlib import Path

from .errors import ShardError
from .readers import Shard

MANIFEST, SUCCESS = "_manifest.json", "_SUCCESS"


def part_name(index):
    return f"part-{index:05d}.parquet"


def _write_atomically(path, write):
    """Call write(temporary path), flush it to disk, then rename it to `path` in one step."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_json(path, data):
    _write_atomically(path, lambda temporary: Path(temporary).write_text(json.dumps(data, indent=1) + "\n"))


def open_output(directory, job, plan):
    """The shards of `job` (a dict naming input, model, options) in `directory`, planning them on first use.

    A directory with a manifest must belong to the same job: the same input file (path, size, mtime)
    and options, else a ShardError says which field differs. A new directory must be empty or absent.
    `plan()` (the input scan) runs only when there is no manifest yet.
    """
    directory = Path(directory)
    manifest = directory / MANIFEST
    if manifest.is_file():
        saved = json.loads(manifest.read_text())
        for key in sorted(set(job) | set(saved["job"])):
            if saved["job"].get(key) != job.get(key):
                raise ShardError(f"{directory} holds the output of another job ({key}: {saved['job'].get(key)!r} "
                                 f"there, {job.get(key)!r} now); use a new --output directory")
        return [Shard(**shard) for shard in saved["shards"]]
    if directory.exists() and any(not _is_temporary(path) for path in directory.iterdir()):
        raise ShardError(f"{directory} is not empty and has no {MANIFEST}: refusing to write parts into it")
    shards = plan()
    directory.mkdir(parents=True, exist_ok=True)
    _write_json(manifest, {"job": job, "shards": [asdict(shard) for shard in shards]})
    return shards


def _is_temporary(path):
    return path.name.startswith(".") and path.name.endswith(".tmp")


def remove_temporaries(directory):
    """Delete the unfinished files that a killed run left behind (call when no worker is writing)."""
    for path in Path(directory).iterdir():
        if _is_temporary(path):
            path.unlink(missing_ok=True)


def pending(directory, shards):
    """The shards whose part file does not exist yet."""
    return [shard for shard in shards if not (Path(directory) / part_name(shard.index)).exists()]


def write_part(directory, shard, table):
    """Write the pyarrow Table of `shard` as its part file, atomically; it must hold the shard's rows."""
    import pyarrow.parquet as pq  # only workers that write need it; the extra is checked by the caller

    ids = table.column("id").to_pylist()
    if len(ids) != shard.rows or (ids and (ids[0] != shard.first_id or len(set(ids)) != len(ids))):
        raise ShardError(f"shard {shard.index}: refusing to write {len(ids)} rows starting at id "
                         f"{ids[0] if ids else None}; planned {shard.rows} rows from id {shard.first_id}")
    path = Path(directory) / part_name(shard.index)
    _write_atomically(path, lambda temporary: pq.write_table(table, temporary))
    return path


def finish(directory, shards):
    """Check that every shard's part exists and holds its rows, and nothing else is there; write _SUCCESS."""
    import pyarrow.parquet as pq

    directory = Path(directory)
    expected = {part_name(shard.index): shard for shard in shards}
    unexpected = sorted(p.name for p in directory.glob("part-*.parquet") if p.name not in expected)
    if unexpected:
        raise ShardError(f"{directory}: part files no shard of this job owns: {', '.join(unexpected)}")
    for name, shard in expected.items():
        path = directory / name
        if not path.is_file():
            raise ShardError(f"{path}: missing; rerun the same command to write it")
        rows = pq.ParquetFile(path).metadata.num_rows
        if rows != shard.rows:
            raise ShardError(f"{path}: {rows} rows, expected {shard.rows}")
    summary = {"rows": sum(shard.rows for shard in shards), "shards": len(shards)}
    _write_json(directory / SUCCESS, summary)
    return summary


def part_table(ids, texts, vectors):
    """The part file's columns: id (int64), text (string), embedding (fixed-size list of float32)."""
    import pyarrow as pa

    rows, dim = vectors.shape  # (n, dim) float32
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(rows * dim), type=pa.float32()), dim)
    return pa.table({"id": pa.array(ids, type=pa.int64()), "text": pa.array(texts, type=pa.string()),
                     "embedding": embedding})
