"""A two-node Ray cluster on one machine (ray.cluster_utils.Cluster, 1 CPU per node): two 1-CPU actors can
only run one on each node, and both the map_batches callable and the CLI give the in-process result."""

import logging

import numpy as np
import pytest

from minidistil import cli, pipeline
from minidistil.ray import SentenceEmbedder

from ray_helpers import OBJECT_STORE_BYTES, corpus, read_dataset

ATOL = 1e-5
pytestmark = pytest.mark.slow  # a two-node cluster: ~50 s on the 2-core dev machine


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install minidistil[ray]")
    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES}
    cluster = Cluster(initialize_head=True, head_node_args=dict(node, include_dashboard=False))
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def texts():
    return corpus(200)


@pytest.fixture(scope="module")
def reference(minilm_dir, texts):
    return pipeline("sentence-embedding", model=str(minilm_dir))(texts)


def test_the_cluster_has_two_nodes_of_one_cpu(cluster):
    nodes = [node for node in cluster.nodes() if node["Alive"]]
    assert [node["Resources"]["CPU"] for node in nodes] == [1.0, 1.0]


def test_map_batches_on_two_nodes_equals_the_in_process_pipeline(cluster, minilm_dir, texts, reference):
    ds = cluster.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=10)
    rows = ds.map_batches(SentenceEmbedder, fn_constructor_args=(str(minilm_dir),), batch_size=20,
                          compute=cluster.data.ActorPoolStrategy(size=2), num_cpus=1).take_all()
    ids = [row["id"] for row in rows]
    assert sorted(ids) == list(range(len(texts))), "every id once"
    for row in rows:
        assert np.abs(np.asarray(row["embedding"]) - reference[row["id"]]).max() <= ATOL, row["id"]


def test_the_cli_on_two_nodes_equals_the_in_process_pipeline(cluster, capsys, minilm_dir, texts, reference,
                                                             tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "out"
    code = cli.main(["embed", "--model", str(minilm_dir), "--input", str(source), "--output", str(out),
                     "--shard-rows", "25", "--ray", cluster.get_runtime_context().gcs_address])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "8 shards on Ray, 2 workers x 1 CPUs" in err  # default: one worker per node, with all its CPUs
    ids, got_texts, vectors = read_dataset(out)
    assert ids == list(range(200)) and got_texts == texts
    assert np.abs(vectors - reference).max() <= ATOL
