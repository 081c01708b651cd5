"""minidistil.ray without a cluster: input files cut into shards, the output directory's exactly-once rules,
and the batch columns the map_batches callables read and write."""

import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="the ray extra is not installed: pip install minidistil[ray]")
pq = pytest.importorskip("pyarrow.parquet")

from minidistil.pipelines import PipelineInputError  # noqa: E402
from minidistil.ray import columns, shards  # noqa: E402
from minidistil.ray.errors import InputFileError, ShardError  # noqa: E402
from minidistil.ray.readers import Shard, input_format, plan_shards, read_shard  # noqa: E402


def all_rows(path, fmt, shard_list, text_column="text"):
    rows = [read_shard(path, fmt, text_column, shard) for shard in shard_list]
    return [i for ids, _ in rows for i in ids], [t for _, texts in rows for t in texts]


def test_text_lines_skip_blank_lines_and_keep_line_numbers_as_ids(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("first\r\n\n  \nsecond ünïcode\nthird\n\nfourth\nfifth".encode())
    plan = plan_shards(path, "text", "text", shard_rows=2)
    assert [s.rows for s in plan] == [2, 2, 1]
    ids, texts = all_rows(path, "text", plan)
    assert ids == [0, 3, 4, 6, 7]  # the line numbers of the non-blank lines
    assert texts == ["first", "second ünïcode", "third", "fourth", "fifth"]


def test_json_lines_read_the_text_column(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps({"body": f"text {i}", "n": i}) for i in range(7)) + "\n")
    assert input_format(path) == "jsonl"
    plan = plan_shards(path, "jsonl", "body", shard_rows=3)
    assert all_rows(path, "jsonl", plan, "body") == (list(range(7)), [f"text {i}" for i in range(7)])


@pytest.mark.parametrize("line, message", [
    ('{"text": ""}', "line 2: field 'text' is empty"),
    ('{"text": 5}', "line 2: field 'text' must be a string, got int"),
    ('{"body": "x"}', r"line 2: no 'text' field \(fields: body\)"),
    ('["text"]', "line 2: expected a JSON object"),
    ("{text", "line 2: not JSON"),
])
def test_a_bad_json_line_is_named_before_any_work(tmp_path, line, message):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n")
    with pytest.raises(InputFileError, match=message):
        plan_shards(path, "jsonl", "text", shard_rows=10)


def test_text_that_is_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"good\nbad \xff here\n")
    with pytest.raises(InputFileError, match="byte 9 is not UTF-8"):
        plan_shards(path, "text", "text", shard_rows=10)


def test_parquet_shards_cross_row_groups(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(23)], "x": list(range(23))}), path, row_group_size=5)
    plan = plan_shards(path, "parquet", "text", shard_rows=7)
    assert [(s.start, s.stop) for s in plan] == [(0, 7), (7, 14), (14, 21), (21, 23)]
    assert all_rows(path, "parquet", plan) == (list(range(23)), [f"row {i}" for i in range(23)])


@pytest.mark.parametrize("values, message", [
    (["a", None, "c"], "row 1: column 'text' is null"),
    (["a", "b", " \t"], "row 2: column 'text' is empty"),
])
def test_a_bad_parquet_row_is_named(tmp_path, values, message):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": pa.array(values, pa.string())}), path)
    with pytest.raises(InputFileError, match=message):
        plan_shards(path, "parquet", "text", shard_rows=10)


def test_parquet_without_a_string_text_column(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": [1, 2], "body": ["a", "b"]}), path)
    with pytest.raises(InputFileError, match="column 'text' must be a string column, got int64"):
        plan_shards(path, "parquet", "text", shard_rows=10)
    with pytest.raises(InputFileError, match=r"no column 'title' \(columns: text, body\)"):
        plan_shards(path, "parquet", "title", shard_rows=10)


def _table(ids):
    return shards.part_table(ids, [f"t{i}" for i in ids], np.ones((len(ids), 3), np.float32))


def test_output_directory_belongs_to_one_job(tmp_path):
    out = tmp_path / "out"
    job = {"input": "/data/in.txt", "input_bytes": 10, "shard_rows": 2}
    plan = [Shard(0, 0, 5, 0, 2), Shard(1, 5, 10, 2, 1)]
    assert shards.open_output(out, job, lambda: plan) == plan
    assert shards.open_output(out, job, lambda: pytest.fail("planned twice")) == plan  # from the manifest
    with pytest.raises(ShardError, match=r"another job \(input_bytes: 10 there, 11 now\)"):
        shards.open_output(out, dict(job, input_bytes=11), lambda: plan)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ShardError, match="is not empty and has no _manifest.json"):
        shards.open_output(other, job, lambda: plan)


def test_parts_are_complete_or_absent_and_finish_checks_every_one(tmp_path):
    plan = [Shard(0, 0, 5, 0, 2), Shard(1, 5, 10, 2, 1)]
    shards.write_part(tmp_path, plan[0], _table([0, 1]))
    assert shards.pending(tmp_path, plan) == [plan[1]]
    with pytest.raises(ShardError, match="missing; rerun"):
        shards.finish(tmp_path, plan)
    with pytest.raises(ShardError, match="refusing to write 2 rows starting at id 2; planned 1 rows from id 2"):
        shards.write_part(tmp_path, plan[1], _table([2, 3]))
    assert not list(tmp_path.glob(".*")), "a refused or failed write leaves no temporary behind"
    (tmp_path / ".part-00001.parquet.0123.tmp").write_bytes(b"half a file")  # a killed writer's leftover
    shards.remove_temporaries(tmp_path)
    assert not list(tmp_path.glob(".*"))
    shards.write_part(tmp_path, plan[1], _table([2]))
    assert shards.finish(tmp_path, plan) == {"rows": 3, "shards": 2}
    assert (tmp_path / "_SUCCESS").is_file()
    pq.write_table(_table([0]), tmp_path / "part-00000.parquet")  # someone replaced a part
    with pytest.raises(ShardError, match="part-00000.parquet: 1 rows, expected 2"):
        shards.finish(tmp_path, plan)
    pq.write_table(_table([9]), tmp_path / "part-00009.parquet")
    with pytest.raises(ShardError, match="part files no shard of this job owns: part-00009.parquet"):
        shards.finish(tmp_path, plan)


def test_rewriting_a_finished_shard_replaces_it_whole(tmp_path):
    shard = Shard(0, 0, 5, 0, 2)
    first = shards.write_part(tmp_path, shard, _table([0, 1]))
    again = shards.write_part(tmp_path, shard, _table([0, 1]))  # a retried task
    assert first == again and pq.read_table(again).column("id").to_pylist() == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000.parquet"]


@pytest.mark.parametrize("make", [lambda d: d, lambda d: pytest.importorskip("pandas").DataFrame(d)],
                         ids=["numpy", "pandas"])
def test_bad_rows_are_named_by_position_and_id(make):
    batch = make({"id": np.array([10, 11, 12]), "text": np.array(["ok", "", "fine"], dtype=object)})
    with pytest.raises(PipelineInputError, match=r"row 1 of the batch \(id 11\): column 'text' is empty"):
        columns.texts(batch, "text")
    batch = make({"id": np.array([10, 11]), "text": np.array(["ok", None], dtype=object)})
    with pytest.raises(PipelineInputError, match=r"row 1 of the batch \(id 11\): column 'text' is missing"):
        columns.texts(batch, "text")
    batch = make({"text": np.array([3, "x"], dtype=object)})
    with pytest.raises(PipelineInputError, match="row 0 of the batch: column 'text' must be a string, got int"):
        columns.texts(batch, "text")
    with pytest.raises(PipelineInputError, match=r"no column 'body'; its columns are \['text'\]"):
        columns.texts(batch, "body")


def test_added_columns_keep_one_cell_per_row():
    batch = {"text": np.array(["a", "b"], dtype=object)}
    out = columns.with_column(batch, "result", [[{"s": 1}], [{"s": 2}]])  # equal-length lists stay cells
    assert out["result"].shape == (2,) and out["result"][1] == [{"s": 2}] and "result" not in batch
