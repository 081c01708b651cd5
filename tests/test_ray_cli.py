"""`minidistil embed --output DIR [--ray ...]`: the Parquet dataset equals the in-process pipeline for every
row, in one process and on a local Ray cluster; reruns resume; a killed actor or a killed job followed by
a rerun leaves every row exactly once."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="the ray extra is not installed: pip install minidistil[ray]")
pq = pytest.importorskip("pyarrow.parquet")

from minidistil import cli, pipeline  # noqa: E402

from pipeline_models import build_model_dir  # noqa: E402
from ray_helpers import corpus, map_worker_pids, read_dataset, start_local_ray  # noqa: E402

ATOL = 1e-5
BLANK_AFTER = (3, 17, 250)  # blank lines in the text file: they hold no row, and ids stay line numbers


@pytest.fixture(scope="module")
def texts():
    return corpus(600)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory, texts):
    """The corpus one text per line, with blank lines after some of them; and each row's line number."""
    lines, ids = [], []
    for i, text in enumerate(texts):
        ids.append(len(lines))
        lines.append(text)
        if i in BLANK_AFTER:
            lines.append("   ")
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, ids


@pytest.fixture(scope="module")
def reference(minilm_dir, texts):
    """The in-process sentence-embedding pipeline's vector for every text."""
    return pipeline("sentence-embedding", model=str(minilm_dir))(texts)  # (600, 384)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    return str(build_model_dir("base", tmp_path_factory.mktemp("model") / "base"))


def embed(capsys, *argv):
    code = cli.main(["embed", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def command(*argv):
    return [sys.executable, "-m", "minidistil.cli", "embed", *map(str, argv)]


def assert_every_row_once(directory, text_file, texts, reference):
    _, ids = text_file
    got_ids, got_texts, vectors = read_dataset(directory)
    assert got_ids == ids, "every row once, under its line number"
    assert got_texts == texts
    assert vectors.dtype == np.float32 and np.abs(vectors - reference).max() <= ATOL
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".")], "no unfinished part left behind"
    assert json.loads((directory / "_SUCCESS").read_text()) == {"rows": len(texts), "shards": len(
        list(directory.glob("part-*.parquet")))}


def snapshot(directory):
    """name -> (inode, mtime_ns) of the finished parts: a part that is rewritten changes both."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.glob("part-*.parquet")}


def wait_for_parts(directory, process, at_least=1, timeout_s=300):
    deadline = time.monotonic() + timeout_s
    while len(snapshot(directory)) < at_least:
        assert process.poll() is None, f"the job ended before writing {at_least} parts: {process.communicate()}"
        assert time.monotonic() < deadline, "no part written in time"
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------ one process


def test_one_process_writes_every_row_once_and_a_rerun_skips_it(capsys, minilm_dir, text_file, texts, reference,
                                                                tmp_path):
    out = tmp_path / "out"
    code, stdout, err = embed(capsys, "--model", minilm_dir, "--input", text_file[0], "--output", out,
                              "--shard-rows", 250)
    assert code == 0, err
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00000.parquet", "part-00001.parquet",
                                                          "part-00002.parquet"]
    assert "embed: 3/3 shards, 600/600 rows" in err and "600 rows in 3 shards" in err and stdout == ""
    assert_every_row_once(out, text_file, texts, reference)
    table = pq.read_table(out / "part-00000.parquet")
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 384)
    before = snapshot(out)
    code, _, err = embed(capsys, "--model", minilm_dir, "--input", text_file[0], "--output", out, "--shard-rows", 250)
    assert code == 0 and "3 of 3 shards already in" in err and snapshot(out) == before


def test_json_lines_and_parquet_give_the_same_rows(capsys, base_model, tmp_path):
    texts = corpus(40)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"body": t, "n": i}) + "\n" for i, t in enumerate(texts)))
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.table({"body": texts}), parquet, row_group_size=7)
    want = pipeline("sentence-embedding", model=base_model)(texts)
    for source in (jsonl, parquet):
        out = tmp_path / f"out-{source.suffix[1:]}"
        code, _, err = embed(capsys, "--model", base_model, "--input", source, "--text-column", "body",
                             "--output", out, "--shard-rows", 16)
        assert code == 0, err
        ids, got_texts, vectors = read_dataset(out)
        assert ids == list(range(40)) and got_texts == texts and np.abs(vectors - want).max() <= ATOL


def test_an_interrupted_job_rerun_ends_with_every_row_once(minilm_dir, text_file, texts, reference, tmp_path):
    out = tmp_path / "out"
    argv = command("--model", minilm_dir, "--input", text_file[0], "--output", out, "--shard-rows", 20,
                   "--batch-size", 20)
    job = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_parts(out, job)
    job.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = job.communicate(timeout=120)
    assert job.returncode == 130 and "interrupted" in err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "the part being written is removed"
    finished = snapshot(out)
    assert 1 <= len(finished) < 30, "killed mid-job"
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} of 30 shards already in" in rerun.stderr
    assert {name: snapshot(out)[name] for name in finished} == finished, "finished parts are not rewritten"
    assert_every_row_once(out, text_file, texts, reference)


def test_another_job_cannot_write_into_the_directory(capsys, base_model, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("one\ntwo\n")
    out = tmp_path / "out"
    assert embed(capsys, "--model", base_model, "--input", source, "--output", out)[0] == 0
    source.write_text("one\ntwo\nthree\n")
    code, _, err = embed(capsys, "--model", base_model, "--input", source, "--output", out)
    assert code == 1 and "holds the output of another job (input_bytes: 8 there, 14 now)" in err


@pytest.mark.parametrize("argv, message", [
    (["--output", "OUT", "some text"], "--output needs --input FILE"),
    (["--output", "OUT", "--input", "-"], "--output needs --input FILE"),
    (["--output", "OUT", "--input", "IN", "--workers", "2"], "--workers needs --ray"),
    (["--output", "OUT", "--input", "IN", "--ray", "--workers", "0"], "--workers must be a positive integer"),
    (["--ray", "some text"], "--ray needs --output DIR"),
    (["--text-column", "body", "some text"], "--text-column needs --output DIR"),
])
def test_usage_errors(capsys, argv, message):
    code, _, err = embed(capsys, *argv)
    assert code == 2 and message in err


def test_text_column_is_for_json_lines_and_parquet(capsys, base_model, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("one\n")
    code, _, err = embed(capsys, "--model", base_model, "--input", source, "--output", tmp_path / "o",
                         "--text-column", "body")
    assert code == 1 and "--text-column is for JSON lines and Parquet input" in err


@pytest.mark.parametrize("module, argv", [("ray", ["--ray", "local"]), ("pyarrow", [])])
def test_without_the_extra_the_error_names_it(capsys, monkeypatch, base_model, tmp_path, module, argv):
    source = tmp_path / "in.txt"
    source.write_text("one\n")
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    code, _, err = embed(capsys, "--model", base_model, "--input", source, "--output", tmp_path / "o", *argv)
    assert code == 1 and f'needs the {module} package: pip install "minidistil[ray]"' in err


def test_ray_local_gives_the_one_process_output(minilm_dir, text_file, texts, reference, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(command("--model", minilm_dir, "--input", text_file[0], "--output", out,
                                 "--shard-rows", 100, "--ray", "local", "--workers", "2"),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "6 shards on Ray, 2 workers x 1 CPUs" in run.stderr
    assert_every_row_once(out, text_file, texts, reference)


# ------------------------------------------------------------------------------------------ on a Ray cluster


@pytest.fixture(scope="module")
def ray_address():
    ray = start_local_ray(num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_on_ray_every_row_equals_the_in_process_pipeline(capsys, ray_address, minilm_dir, text_file, texts,
                                                         reference, tmp_path):
    out = tmp_path / "out"
    code, _, err = embed(capsys, "--model", minilm_dir, "--input", text_file[0], "--output", out,
                         "--shard-rows", 64, "--ray", ray_address, "--workers", "2")
    assert code == 0, err
    assert "10 shards on Ray, 2 workers x 1 CPUs" in err and "600 rows in 10 shards" in err
    assert_every_row_once(out, text_file, texts, reference)


def test_on_ray_a_killed_actor_still_ends_with_every_row_once(ray_address, minilm_dir, text_file, texts,
                                                              reference, tmp_path):
    out = tmp_path / "out"
    job = subprocess.Popen(command("--model", minilm_dir, "--input", text_file[0], "--output", out,
                                   "--shard-rows", 20, "--ray", ray_address, "--workers", "2"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_parts(out, job)
    workers = map_worker_pids()
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    assert len(snapshot(out)) < 30, "killed mid-job"
    _, err = job.communicate(timeout=600)
    assert job.returncode == 0, err
    assert_every_row_once(out, text_file, texts, reference)


def test_on_ray_a_killed_job_rerun_ends_with_every_row_once(capsys, ray_address, minilm_dir, text_file, texts,
                                                            reference, tmp_path):
    out = tmp_path / "out"
    argv = ["--model", minilm_dir, "--input", text_file[0], "--output", out, "--shard-rows", 20,
            "--ray", ray_address, "--workers", "2"]
    job = subprocess.Popen(command(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_parts(out, job)
    job.send_signal(signal.SIGKILL)  # the driver: Ray ends its actors with it
    job.communicate()
    finished = snapshot(out)
    assert 1 <= len(finished) < 30, "killed mid-job"
    code, _, err = embed(capsys, *argv)
    assert code == 0, err
    assert {name: snapshot(out)[name] for name in finished} == finished, "finished parts are not rewritten"
    assert_every_row_once(out, text_file, texts, reference)


def test_quantize_int8_writes_the_int8_pipelines_rows_and_is_part_of_the_jobs_identity(capsys, base_model, tmp_path):
    texts = corpus(24)
    source = tmp_path / "in.txt"
    source.write_text("".join(t + "\n" for t in texts))
    out = tmp_path / "out"
    code, _, err = embed(capsys, "--model", base_model, "--input", source, "--output", out, "--quantize", "int8")
    assert code == 0, err
    _, _, vectors = read_dataset(out)
    assert np.abs(vectors - pipeline("sentence-embedding", model=base_model, quantize="int8")(texts)).max() <= ATOL
    assert np.abs(vectors - pipeline("sentence-embedding", model=base_model)(texts)).max() > 1e-6
    code, _, err = embed(capsys, "--model", base_model, "--input", source, "--output", out)
    assert code == 1 and "holds the output of another job (quantize: 'int8' there, None now)" in err
