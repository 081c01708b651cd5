"""Model sources: local dirs, the HF cache layout, installed packages, and downloads from a real local HTTP server."""

import hashlib
import http.server
import json
import threading

import pytest

from minidistil import ModelSourceError
from minidistil import sources

COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEIGHTS = bytes(range(256)) * 4096  # 1 MiB, several read chunks


class Hub:
    """A hub-shaped HTTP server on 127.0.0.1: /{repo}/resolve/{rev}/{file}, LFS files redirect to /lfs/{sha256}."""

    def __init__(self, repos):
        self.repos = repos  # repo_id -> {filename: bytes}
        self.requests = []  # (method, path, Range header)
        self.authorization = []  # (path, Authorization header)
        self.cut_after = None  # bytes sent of an LFS body before the connection is dropped (once)
        self.corrupt = False  # serve flipped bytes for LFS bodies
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(body=False)

            def do_GET(self):
                self.answer(body=True)

            def answer(self, body):
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                hub.authorization.append((self.path, self.headers.get("Authorization")))
                parts = self.path.lstrip("/").split("/")
                if parts[0] == "lfs":
                    return self.lfs(parts[1], body)
                if "resolve" not in parts:
                    return self.send_status(404)
                i = parts.index("resolve")
                repo, filename = "/".join(parts[:i]), "/".join(parts[i + 2 :])
                content = hub.repos.get(repo, {}).get(filename)
                if content is None:
                    return self.send_status(404)
                if filename.endswith(".safetensors"):
                    sha = hashlib.sha256(content).hexdigest()
                    self.send_response(302)
                    # Storage on another host name, as the hub's CDN is.
                    self.send_header("Location", f"http://localhost:{hub.port}/lfs/{sha}")
                    self.send_header("X-Linked-Etag", f'"{sha}"')
                    self.send_header("X-Linked-Size", str(len(content)))
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                git_sha = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
                self.send_response(200)
                self.send_header("ETag", f'"{git_sha}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if body:
                    self.wfile.write(content)

            def lfs(self, sha, body):
                content = next(
                    (c for files in hub.repos.values() for c in files.values() if hashlib.sha256(c).hexdigest() == sha),
                    None,
                )
                if content is None:
                    return self.send_status(404)
                if hub.corrupt:
                    content = bytes(b ^ 1 for b in content)
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(content) - start))
                self.end_headers()
                if not body:
                    return
                data = content[start:]
                if hub.cut_after is not None:
                    cut, hub.cut_after = hub.cut_after, None
                    self.wfile.write(data[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def send_status(self, code):
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


CONFIG = json.dumps({"model_type": "distilbert", "dim": 32}).encode()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    server = Hub({"org/tiny": {"config.json": CONFIG, "model.safetensors": WEIGHTS, "vocab.txt": b"[PAD]\n"}})
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


def test_download_resumes_after_a_cut(hub, tmp_path):
    hub.cut_after = 300_000
    with pytest.raises(ModelSourceError, match="run again to resume"):
        sources.resolve_model_dir("org/tiny")
    partial = tmp_path / "hf" / "hub" / "models--org--tiny" / "blobs" / (hashlib.sha256(WEIGHTS).hexdigest() + ".incomplete")
    assert partial.stat().st_size == 300_000
    path = sources.resolve_model_dir("org/tiny")
    assert (path / "model.safetensors").read_bytes() == WEIGHTS
    ranges = [r for (m, p, r) in hub.requests if m == "GET" and p.startswith("/lfs/")]
    assert ranges == [None, "bytes=300000-"]


def test_unknown_model_is_a_404(hub):
    with pytest.raises(ModelSourceError, match="unknown model 'org/missing'"):
        sources.resolve_model_dir("org/missing")


def test_checksum_mismatch_is_refused_and_nothing_is_cached(hub, tmp_path):
    hub.corrupt = True
    with pytest.raises(ModelSourceError, match="checksum mismatch for org/tiny/model.safetensors"):
        sources.resolve_model_dir("org/tiny")
    blobs = tmp_path / "hf" / "hub" / "models--org--tiny" / "blobs"
    assert not (blobs / hashlib.sha256(WEIGHTS).hexdigest()).exists()
    assert not list(blobs.glob("*.incomplete"))
    hub.corrupt = False
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
    sent = {path: auth for path, auth in hub.authorization}
    assert sent["/org/tiny/resolve/main/config.json"] == "Bearer secret"
    lfs = [auth for path, auth in hub.authorization if path.startswith("/lfs/")]
    assert lfs == [None]


def test_progress_bar_goes_to_stderr(hub, capsys):
    sources.download_model("org/tiny", progress=True)
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
