"""Shared by tests/test_ray*.py: a corpus, a local Ray cluster, Ray Data's worker processes, part files."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest

OBJECT_STORE_BYTES = 200 * 1024**2  # small: this machine has 2 cores and little memory to spare
TOPICS = ["the weather in spring", "a football match", "baking bread", "the stock market", "a cat on a sofa",
          "quantum physics", "a long train journey", "the history of Rome", "learning the piano", "a rainy day"]


def corpus(n):
    """n distinct, deterministic sentences of different lengths."""
    return [f"Sentence {i} is about {TOPICS[i % len(TOPICS)]}" + " and more" * (i % 7) + "." for i in range(n)]


def start_local_ray(num_cpus=2):
    """A new local Ray instance owned by this test process (address="local": never a cluster found on disk)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install minidistil[ray]")
    ray.init(address="local", num_cpus=num_cpus, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
             logging_level=logging.WARNING)
    return ray


def _parent(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def _descends_from(pid, ancestor):
    while pid > 1:
        if pid == ancestor:
            return True
        pid = _parent(pid)
    return False


def map_worker_pids():
    """Pids of the Ray Data actor processes (title 'ray::MapWorker(...)') under this test process."""
    if not Path("/proc/self/status").exists():
        pytest.skip("finding Ray's worker processes needs Linux /proc")
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::MapWorker") \
                    and _descends_from(int(entry.name), os.getpid()):
                pids.append(int(entry.name))
        except (OSError, ValueError):  # the process ended while we looked
            continue
    return pids


def read_dataset(directory):
    """(ids, texts, embeddings (n, dim)) of a Parquet output directory, in id order."""
    import pyarrow.dataset as ds

    table = ds.dataset(str(directory), format="parquet").to_table().sort_by("id")
    vectors = table.column("embedding").combine_chunks()
    dim = vectors.type.list_size
    return (table.column("id").to_pylist(), table.column("text").to_pylist(),
            vectors.flatten().to_numpy().reshape(-1, dim))


def assert_close(got, want, atol=1e-5, where="result"):
    """Same structure (dict keys, list lengths, strings, ints) and floats within atol."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {got} vs {want}"
        for key in want:
            assert_close(got[key], want[key], atol, f"{where}[{key!r}]")
    elif isinstance(want, (list, tuple, np.ndarray)):
        assert len(got) == len(want), f"{where}: length {len(got)} vs {len(want)}"
        for i, (a, b) in enumerate(zip(got, want)):
            assert_close(a, b, atol, f"{where}[{i}]")
    elif isinstance(want, (float, np.floating)):
        assert abs(float(got) - float(want)) <= atol, f"{where}: {got} vs {want}"
    else:
        assert got == want, f"{where}: {got!r} vs {want!r}"
