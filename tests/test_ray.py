"""The map_batches callables on a local Ray cluster started by the test (2 CPUs): every row equals the
in-process pipeline's result, threads follow the actor's CPUs, bad rows are named, a killed actor loses
no row and doubles none."""

import os
import signal

import numpy as np
import pytest

from minidistil import pipeline
from minidistil.ray import Pipeline, SentenceEmbedder

from pipeline_models import build_model_dir
from ray_helpers import assert_close, corpus, map_worker_pids, start_local_ray

ATOL = 1e-5
pytestmark = pytest.mark.slow  # a local Ray cluster and MiniLM actors: ~100 s on the 2-core dev machine


@pytest.fixture(scope="module")
def ray():
    ray = start_local_ray(num_cpus=2)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray-models")
    return {name: str(build_model_dir(name, root / name)) for name in ("base", "classifier", "ner", "mlm", "qa")}


def pool(ray, size=2):
    return dict(compute=ray.data.ActorPoolStrategy(size=size), num_cpus=1)


def dataset(ray, rows, blocks=8):
    return ray.data.from_items(rows, override_num_blocks=blocks)


@pytest.mark.parametrize("batch_format", ["numpy", "pandas"])
def test_embeddings_equal_the_in_process_pipeline_for_every_row(ray, minilm_dir, batch_format):
    texts = corpus(96)
    rows = dataset(ray, [{"id": i, "text": t} for i, t in enumerate(texts)]).map_batches(
        SentenceEmbedder, fn_constructor_args=(str(minilm_dir),), fn_constructor_kwargs={"batch_size": 8},
        batch_size=16, batch_format=batch_format, **pool(ray)).take_all()
    ids = [row["id"] for row in rows]
    assert sorted(ids) == list(range(len(texts))), "every id once"
    want = pipeline("sentence-embedding", model=str(minilm_dir))(texts)  # (96, 384)
    for row in rows:
        assert row["text"] == texts[row["id"]]
        vector = np.asarray(row["embedding"])
        assert vector.dtype == np.float32 and vector.shape == (384,)
        assert np.abs(vector - want[row["id"]]).max() <= ATOL, row["id"]


def test_threads_follow_the_cpus_ray_gives_the_actor(ray, models):
    @ray.remote
    def threads_of_an_embedder(model):
        return SentenceEmbedder(model).threads

    assert ray.get(threads_of_an_embedder.options(num_cpus=2).remote(models["base"])) == 2
    assert ray.get(threads_of_an_embedder.options(num_cpus=1).remote(models["base"])) == 1
    assert SentenceEmbedder(models["base"], threads=1).threads == 1  # explicit wins; outside Ray: the default
    assert SentenceEmbedder(models["base"]).threads is None


def test_an_empty_batch_gets_an_empty_float32_column(models):
    out = SentenceEmbedder(models["base"])({"text": np.array([], dtype=object)})
    assert out["embedding"].shape == (0, 32) and out["embedding"].dtype == np.float32


def _task_rows(task):
    texts = corpus(12)
    if task == "fill-mask":
        return [{"id": i, "text": t.replace("about", "[MASK]")} for i, t in enumerate(texts)]
    if task == "question-answering":
        return [{"id": i, "question": f"What is sentence {i} about?", "context": t} for i, t in enumerate(texts)]
    return [{"id": i, "text": t} for i, t in enumerate(texts)]


@pytest.mark.parametrize("task, model, options", [
    ("text-classification", "classifier", {"top_k": None}),
    ("text-classification", "classifier", {}),
    ("ner", "ner", {"aggregation_strategy": "simple"}),
    ("fill-mask", "mlm", {"top_k": 3}),
    ("question-answering", "qa", {}),
])
def test_pipeline_tasks_give_the_in_process_result_for_every_row_in_arrow_types(ray, models, task, model, options):
    import pyarrow as pa

    rows = _task_rows(task)
    ds = dataset(ray, rows, blocks=4).map_batches(
        Pipeline, fn_constructor_args=(task, models[model]), fn_constructor_kwargs=options, batch_size=5,
        **pool(ray)).materialize()
    output_type = ds.schema().base_schema.field("output").type
    assert isinstance(output_type, (pa.StructType, pa.ListType)), f"{task}: stored as {output_type}, not Arrow-typed"
    run = pipeline(task, model=models[model], **options)
    for row in ds.take_all():
        item = rows[row["id"]]
        alone = run(**{k: item[k] for k in ("question", "context")}) if task == "question-answering" \
            else run([item["text"]])
        want = alone[0] if task in ("text-classification", "ner") else alone
        assert_close(row["output"], want, ATOL, f"{task} id {row['id']}")


def test_a_bad_row_fails_the_job_naming_its_row_and_id(ray, models):
    rows = [{"id": i, "text": t} for i, t in enumerate(corpus(10))]
    rows[7]["text"] = "   "
    with pytest.raises(Exception, match=r"row \d of the batch \(id 7\): column 'text' is empty"):
        dataset(ray, rows, blocks=2).map_batches(
            SentenceEmbedder, fn_constructor_args=(models["base"],), batch_size=5, **pool(ray, 1)).materialize()


def test_a_killed_actor_loses_no_row_and_repeats_none(ray, minilm_dir):
    texts = corpus(480)
    ds = dataset(ray, [{"id": i, "text": t} for i, t in enumerate(texts)], blocks=30).map_batches(
        SentenceEmbedder, fn_constructor_args=(str(minilm_dir),), fn_constructor_kwargs={"batch_size": 16},
        batch_size=16, **pool(ray))
    rows, killed = [], None
    for row in ds.iter_rows():
        rows.append(row)
        if killed is None:
            workers = map_worker_pids()
            assert len(workers) == 2, workers
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
            rows_at_kill = len(rows)
    assert rows_at_kill < len(texts) / 2, "the kill must land mid-job"
    assert killed not in map_worker_pids()
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == len(texts) and sorted(ids) == list(range(len(texts)))
    want = pipeline("sentence-embedding", model=str(minilm_dir))(texts)
    got = np.stack([np.asarray(row["embedding"]) for row in sorted(rows, key=lambda r: r["id"])])
    assert np.abs(got - want).max() <= ATOL
