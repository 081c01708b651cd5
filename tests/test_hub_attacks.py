"""A hostile hub plays every download attack of issue 13; each must end in a named error.

Every test runs against two real servers on 127.0.0.1 (tests/hub_server.py): the hub, and "other",
another origin (another port) that records what reaches it. After every test the fixture checks,
whatever the test asserted: nothing was created outside the cache (a sentinel dir beside it and
the whole tmp tree are compared with before, an absolute target under the system temp dir must not
exist), the sentinel file is untouched, every blob in the cache hashes to its name, every symlink
stays inside the cache, no cached file holds the sentinel's bytes, and the token reached no origin
but the hub's.
"""

import dataclasses
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from minidistil import MinidistilError, ModelSourceError, cli, sources
from minidistil.hub import download as download_module
from minidistil.hub.cache import RepoCache
from minidistil.hub.download import download_file, download_model
from minidistil.hub.errors import IntegrityError, TransferError, UnsafeName
from minidistil.hub.integrity import content_hash
from minidistil.hub.transport import Limits

from hub_server import COMMIT, HubServer, Reply, drip, endless, git_blob_sha1

REPO = "org/tiny"
CONFIG = json.dumps({"model_type": "distilbert", "dim": 32}).encode()
WEIGHTS = bytes(range(256)) * 64  # 16 KiB
VOCAB = b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n"
TOKEN = "secret-token-13"
PRECIOUS = b"precious: must never be read into the cache or overwritten"
WEIGHTS_SHA = hashlib.sha256(WEIGHTS).hexdigest()
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
# From snapshots/<commit>/ four levels up is the test's tmp dir, which holds the sentinel dir.
UP = "../../../../"
ABSOLUTE_TARGET = os.path.join(tempfile.gettempdir(), f"minidistil-attack-{os.getpid()}")
# Fast limits so that the slow attacks end in about a second: 2 kB/s over 0.5 s windows.
FAST = Limits(read_timeout=2.0, head_deadline=3.0, min_rate=2_000.0, rate_window=0.5, grace=3.0)


def tree(root):
    paths = set()
    for folder, dirs, files in os.walk(root):
        paths.update(Path(folder, name) for name in dirs + files)
    return paths


@dataclasses.dataclass
class World:
    hub: HubServer
    other: HubServer
    files: dict
    cache: Path
    sentinel: Path

    @property
    def blobs(self):
        return RepoCache(self.cache, REPO).folder / "blobs"

    def download(self, **kwargs):
        return download_model(REPO, cache_dir=self.cache, **{"limits": FAST, **kwargs})


@pytest.fixture
def world(tmp_path, monkeypatch):
    files = {"config.json": CONFIG, "model.safetensors": WEIGHTS, "vocab.txt": VOCAB}
    repos = {REPO: files}
    hub, other = HubServer(repos), HubServer(repos)
    cache, sentinel = tmp_path / "cache", tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "victim.txt").write_bytes(PRECIOUS)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HUGGINGFACE_HUB_CACHE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    before = tree(tmp_path)
    yield World(hub, other, files, cache, sentinel)
    hub.close()
    other.close()
    outside = {p for p in tree(tmp_path) - before if p != cache and cache not in p.parents}
    assert not outside, f"created outside the cache: {sorted(map(str, outside))}"
    assert sorted(sentinel.iterdir()) == [sentinel / "victim.txt"]
    assert not (sentinel / "victim.txt").is_symlink() and (sentinel / "victim.txt").read_bytes() == PRECIOUS
    assert not os.path.lexists(ABSOLUTE_TARGET) and not os.path.lexists(ABSOLUTE_TARGET + ".safetensors")
    for path in tree(cache) if cache.exists() else ():
        if path.is_symlink():
            assert cache.resolve() in path.resolve().parents, f"{path} points outside the cache"
        elif path.is_file():
            assert path.read_bytes() != PRECIOUS, f"{path} holds the sentinel's bytes"
            if path.parent.name == "blobs" and not path.name.endswith(".incomplete"):
                assert content_hash(path, path.name) == path.name, f"blob {path} differs from its hash"
    hub_origin = f"127.0.0.1:{hub.port}"
    for request in hub.requests + other.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "authorization" in headers:
            assert headers.get("host") == hub_origin, f"token sent to {headers.get('host')}: {request.path}"
        assert not any(TOKEN in v for k, v in headers.items() if headers.get("host") != hub_origin)


def when(kind=None, method=None, filename=None):
    """A predicate on requests, for rewrites."""
    return lambda r: (
        (kind is None or r.kind == kind)
        and (method is None or r.method == method)
        and (filename is None or r.filename == filename)
    )


def rewrite(world, matches, change):
    world.hub.rewrite = lambda request, reply: change(reply) if matches(request) else reply


def named(exc_info):
    """The error is one of ours, and its message is one line."""
    assert isinstance(exc_info.value, MinidistilError) and "\n" not in str(exc_info.value)
    return str(exc_info.value)


def test_the_honest_hub_works_and_the_checks_hold(world):
    snapshot = world.download()
    assert (snapshot / "model.safetensors").read_bytes() == WEIGHTS
    assert (snapshot / "vocab.txt").read_bytes() == VOCAB
    tokens = [r.headers.get("Authorization") for r in world.hub.requests if r.kind == "resolve"]
    assert tokens and set(tokens) == {f"Bearer {TOKEN}"}  # the hub itself gets the token


# ------------------------------------------------------------------- names: path traversal


def index_with_shard(world, shard):
    world.files.pop("model.safetensors")
    world.files["model-00001-of-00002.safetensors"] = WEIGHTS
    world.files[shard] = b"bytes the server chose"
    weight_map = {"a.weight": "model-00001-of-00002.safetensors", "b.weight": shard}
    world.files["model.safetensors.index.json"] = json.dumps({"metadata": {}, "weight_map": weight_map}).encode()


@pytest.mark.parametrize(
    "shard",
    [
        UP + "sentinel/victim.txt.safetensors",
        UP + "sentinel/../sentinel/x.safetensors",
        ABSOLUTE_TARGET + ".safetensors",
        "..\\..\\..\\..\\sentinel\\x.safetensors",
        "sub/dir.safetensors",
        "C:x.safetensors",
        "x\x00.safetensors",
        "..",
    ],
)
def test_shard_name_from_weight_map_cannot_leave_the_snapshot(world, shard):
    index_with_shard(world, shard)
    with pytest.raises(UnsafeName, match=r"weight_map\['b.weight'\] shard") as exc:
        world.download()
    assert "model.safetensors.index.json" in named(exc)
    assert not world.hub.seen(kind="lfs")  # refused before any shard was asked for


@pytest.mark.parametrize("commit", [UP + "sentinel/snap", ABSOLUTE_TARGET, "0123456789ABCDEF0123456789ABCDEF01234567",
                                    "g" * 40, COMMIT + "/..", ""])
def test_x_repo_commit_must_be_40_hex(world, commit):
    rewrite(world, when(kind="resolve"), lambda reply: reply.with_headers(X_Repo_Commit=commit))
    with pytest.raises(UnsafeName, match="X-Repo-Commit") as exc:
        world.download()
    assert "commit hash" in named(exc)


@pytest.mark.parametrize("path", [UP + "sentinel", ABSOLUTE_TARGET, "1_Pooling/../../x", "a\\..\\..\\b", "./1_Pooling"])
def test_modules_json_module_path_cannot_leave_the_snapshot(world, path):
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": path, "type": "sentence_transformers.models.Pooling"},
    ]
    world.files["modules.json"] = json.dumps(modules).encode()
    world.files[f"{path}/config.json"] = b'{"pooling_mode_mean_tokens": true}'
    with pytest.raises(UnsafeName, match=r"module 1 'path'") as exc:
        world.download()
    assert "modules.json" in named(exc)


@pytest.mark.parametrize(
    "etag, message",
    [
        (f'"{UP}sentinel/etag"', "neither a git blob SHA-1 nor a sha256"),
        ('"abc/def"', "neither a git blob SHA-1 nor a sha256"),
        ('""', "neither a git blob SHA-1 nor a sha256"),
        ("", "neither a git blob SHA-1 nor a sha256"),
        ('W/""', "neither a git blob SHA-1 nor a sha256"),
        ('"' + "a" * 39 + '/"', "neither a git blob SHA-1 nor a sha256"),
        (None, "the server sent none"),
    ],
)
def test_etag_must_be_a_hash(world, etag, message):
    rewrite(world, when(kind="resolve", filename="config.json"), lambda reply: reply.with_headers(ETag=etag))
    with pytest.raises(UnsafeName, match="ETag") as exc:
        world.download()
    assert message in named(exc)
    assert not world.blobs.exists()


@pytest.mark.parametrize("revision", [UP + "sentinel/ref", "/abs/ref", "a/../../b", ".hidden", "main.lock", "a\\b", ""])
def test_revision_cannot_leave_refs(world, revision):
    with pytest.raises(UnsafeName, match="revision") as exc:
        sources.resolve_model_dir(REPO, revision=revision)
    named(exc)
    assert world.hub.requests == []  # refused before asking the server


def test_revision_traversal_on_the_command_line_is_one_line_exit_1(world, capsys):
    code = cli.main(["download", REPO, "--revision", UP + "sentinel/ref"])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "revision" in err


@pytest.mark.parametrize("filename", [UP + "sentinel/x", "/etc/passwd", "a//b", "a/./b", "dir/", "x\x1b[2J"])
def test_file_name_asked_for_is_checked(world, filename):
    with pytest.raises(UnsafeName, match="file name") as exc:
        download_file(REPO, filename, cache_dir=world.cache, limits=FAST)
    named(exc)


def test_a_ref_file_in_the_cache_must_hold_a_commit(world):
    refs = RepoCache(world.cache, REPO).folder / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(UP + "sentinel")
    with pytest.raises(UnsafeName, match="ref file") as exc:
        sources.resolve_model_dir(REPO)
    named(exc)


def test_a_repo_id_is_checked_before_it_names_a_folder(world):
    with pytest.raises(UnsafeName, match="repo id") as exc:
        download_file("../../sentinel", "config.json", cache_dir=world.cache, limits=FAST)
    named(exc)


# ------------------------------------------------------------------- integrity


def test_regular_file_cut_short_without_content_length_is_not_accepted(world):
    # The HEAD announces the size; the GET has no Content-Length and stops half-way.
    rewrite(world, when(kind="resolve", method="GET", filename="vocab.txt"),
            lambda reply: dataclasses.replace(reply, body=VOCAB[: len(VOCAB) // 2], length=None))
    with pytest.raises(TransferError, match=rf"vocab.txt stopped at {len(VOCAB) // 2} of {len(VOCAB)} bytes") as exc:
        world.download()
    named(exc)
    assert not (world.blobs / git_blob_sha1(VOCAB)).exists()
    world.hub.rewrite = None  # an honest server again: the next run completes it
    assert (world.download() / "vocab.txt").read_bytes() == VOCAB


@pytest.mark.parametrize("target", ["regular", "lfs"])
def test_a_file_without_a_size_is_refused(world, target):
    if target == "regular":
        rewrite(world, when(kind="resolve", method="HEAD", filename="config.json"),
                lambda reply: dataclasses.replace(reply, length=None))
    else:
        rewrite(world, when(kind="resolve", filename="model.safetensors"), lambda r: r.with_headers(X_Linked_Size=None))
    with pytest.raises(TransferError, match="announced no file size") as exc:
        world.download()
    named(exc)


def test_regular_file_with_other_content_fails_its_git_sha1(world):
    other = VOCAB.replace(b"hello", b"HELLO")
    rewrite(world, when(kind="resolve", method="GET", filename="vocab.txt"),
            lambda reply: dataclasses.replace(reply, body=other))
    with pytest.raises(IntegrityError, match="checksum mismatch for org/tiny/vocab.txt: git blob SHA-1") as exc:
        world.download()
    named(exc)
    assert not list(world.blobs.glob(git_blob_sha1(VOCAB) + "*"))


@pytest.mark.parametrize("target", ["regular", "lfs"])
def test_head_announcing_zero_bytes_is_a_checksum_error(world, target):
    if target == "regular":
        rewrite(world, when(kind="resolve", method="HEAD", filename="config.json"),
                lambda reply: dataclasses.replace(reply, length=0))
    else:
        rewrite(world, when(kind="resolve", filename="model.safetensors"), lambda r: r.with_headers(X_Linked_Size="0"))
    with pytest.raises(IntegrityError, match="checksum mismatch") as exc:
        world.download()
    named(exc)


def test_an_endless_body_is_read_only_up_to_the_announced_size(world):
    rewrite(world, when(kind="lfs", method="GET"),
            lambda reply: dataclasses.replace(reply, body=endless(WEIGHTS, world.hub), length=None))
    started = time.monotonic()
    snapshot = world.download()
    assert time.monotonic() - started < 5
    assert (world.blobs / WEIGHTS_SHA).stat().st_size == len(WEIGHTS)
    assert (snapshot / "model.safetensors").read_bytes() == WEIGHTS


def test_an_endless_body_of_garbage_fails_the_hash_and_is_dropped(world):
    rewrite(world, when(kind="lfs", method="GET"),
            lambda reply: dataclasses.replace(reply, body=endless(b"", world.hub), length=None))
    with pytest.raises(IntegrityError, match="checksum mismatch for org/tiny/model.safetensors: sha256") as exc:
        world.download()
    named(exc)
    assert not list(world.blobs.glob(WEIGHTS_SHA + "*"))


def test_a_get_announcing_more_than_the_head_is_refused_before_writing(world):
    rewrite(world, when(kind="lfs", method="GET"), lambda reply: dataclasses.replace(reply, body=WEIGHTS + b"x" * 99))
    message = f"Content-Length {len(WEIGHTS) + 99}, but the file has {len(WEIGHTS)}"
    with pytest.raises(TransferError, match=message) as exc:
        world.download()
    named(exc)
    assert (world.blobs / (WEIGHTS_SHA + ".incomplete")).stat().st_size == 0


def partial_blob(world, nbytes):
    world.blobs.mkdir(parents=True)
    (world.blobs / (WEIGHTS_SHA + ".incomplete")).write_bytes(WEIGHTS[:nbytes])


def test_a_resume_answered_from_the_wrong_offset_is_refused(world):
    partial_blob(world, 1000)
    rewrite(world, when(kind="lfs", method="GET"),
            lambda reply: dataclasses.replace(reply, headers={"Content-Range": f"bytes 0-{len(WEIGHTS) - 1}/*"},
                                              body=WEIGHTS) if reply.status == 206 else reply)
    with pytest.raises(TransferError, match=r"Content-Range 'bytes 0-.*' is not bytes 1000-") as exc:
        world.download()
    named(exc)


def test_a_resume_refused_with_416_drops_the_partial_file(world):
    partial_blob(world, 1000)
    rewrite(world, when(kind="lfs", method="GET"), lambda reply: Reply(416) if reply.status == 206 else reply)
    with pytest.raises(TransferError, match=r"refused to resume .* \(HTTP 416\)") as exc:
        world.download()
    named(exc)
    assert not (world.blobs / (WEIGHTS_SHA + ".incomplete")).exists()
    world.hub.rewrite = None
    assert (world.download() / "model.safetensors").read_bytes() == WEIGHTS


@pytest.mark.parametrize("size", ["9" * 5000, "-5", "1e6", "0x10", " "])
def test_an_absurd_size_header_is_refused(world, size):
    rewrite(world, when(kind="resolve", filename="model.safetensors"), lambda r: r.with_headers(X_Linked_Size=size))
    with pytest.raises(TransferError, match="X-Linked-Size .* is not a byte count") as exc:
        world.download()
    named(exc)


def test_a_size_larger_than_the_free_disk_is_refused_before_downloading(world):
    rewrite(world, when(kind="resolve", filename="model.safetensors"),
            lambda r: r.with_headers(X_Linked_Size=str(10**17)))
    with pytest.raises(TransferError, match=r"announced 100000000000000000 bytes; .* free") as exc:
        world.download()
    named(exc)
    assert not world.hub.seen(kind="lfs")


# ------------------------------------------------------------------- redirects and the token


def test_lfs_storage_on_another_port_gets_no_token(world):
    rewrite(world, when(kind="resolve", filename="model.safetensors"),
            lambda r: r.with_headers(Location=f"{world.other.endpoint}/lfs/{WEIGHTS_SHA}"))
    assert (world.download() / "model.safetensors").read_bytes() == WEIGHTS
    assert [r.headers.get("Authorization") for r in world.other.seen("GET", "lfs")] == [None]


def test_a_get_redirected_to_another_origin_loses_the_token(world):
    rewrite(world, when(kind="resolve", method="GET", filename="vocab.txt"),
            lambda r: Reply(302, {"Location": f"{world.other.endpoint}/{REPO}/resolve/{COMMIT}/vocab.txt"}))
    assert (world.download() / "vocab.txt").read_bytes() == VOCAB
    [first] = [r for r in world.hub.seen("GET") if r.filename == "vocab.txt"]
    assert first.headers.get("Authorization") == f"Bearer {TOKEN}"
    [moved] = world.other.seen("GET")
    assert moved.headers.get("Authorization") is None


def test_a_token_dropped_on_leaving_the_origin_stays_dropped_on_coming_back(world):
    back = f"{world.hub.endpoint}/{REPO}/resolve/{COMMIT}/vocab.txt?back=1"

    def there_and_back(request, reply):
        if request.method == "GET" and request.filename == "vocab.txt" and "?" not in request.path:
            return Reply(302, {"Location": f"{world.other.endpoint}/bounce"})
        return reply

    world.hub.rewrite = there_and_back
    world.other.rewrite = lambda request, reply: Reply(302, {"Location": back}) if request.path == "/bounce" else reply
    assert (world.download() / "vocab.txt").read_bytes() == VOCAB
    [returned] = [r for r in world.hub.requests if r.path.endswith("?back=1")]
    assert returned.headers.get("Authorization") is None


@pytest.mark.parametrize(
    "phase, location",
    [
        ("HEAD", "file://localhost{victim}"),
        ("HEAD", "file:{victim}"),
        ("HEAD", "file:victim.txt"),
        ("GET", "file://localhost{victim}"),
        ("GET", "file:{victim}"),
        ("GET", "ftp://127.0.0.1/x"),
        ("GET", "data:text/plain,precious"),
        ("LFS", "file://{victim}"),
    ],
)
def test_redirects_go_to_http_and_https_only(world, phase, location):
    location = location.format(victim=world.sentinel / "victim.txt")
    if phase == "LFS":
        rewrite(world, when(kind="resolve", filename="model.safetensors"), lambda r: r.with_headers(Location=location))
    else:
        rewrite(world, when(kind="resolve", method=phase, filename="config.json"),
                lambda r: Reply(302, {"Location": location}))
    with pytest.raises(TransferError, match="redirect Location .* is not an http.s. URL") as exc:
        world.download()
    named(exc)


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_a_redirect_loop_ends(world, method):
    rewrite(world, when(kind="resolve", method=method, filename="config.json"),
            lambda r: Reply(302, {"Location": f"/{REPO}/resolve/main/config.json"}))
    with pytest.raises(TransferError, match="more than 10 redirects") as exc:
        world.download()
    named(exc)


def test_a_redirect_without_location_is_refused(world):
    rewrite(world, when(kind="resolve", method="HEAD", filename="config.json"), lambda r: Reply(302))
    with pytest.raises(TransferError, match="redirect without a Location") as exc:
        world.download()
    named(exc)


@pytest.mark.parametrize("endpoint", ["file:///etc", "ftp://127.0.0.1", "127.0.0.1:80", "http://"])
def test_the_endpoint_must_be_http(world, monkeypatch, endpoint):
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(TransferError, match="hub endpoint") as exc:
        world.download()
    named(exc)


# ------------------------------------------------------------------- time


def test_a_dripping_body_is_refused_for_its_rate(world):
    rewrite(world, when(kind="lfs", method="GET"),
            lambda reply: dataclasses.replace(reply, body=drip(WEIGHTS, 0.02, world.hub)))
    started = time.monotonic()
    with pytest.raises(TransferError, match="below the minimum rate of 2000 bytes/s") as exc:
        world.download()
    named(exc)
    assert time.monotonic() - started < 4


def dripping_headers(wfile, hub):
    wfile.write(b"HTTP/1.1 200 OK\r\n")
    for byte in drip(b"X-Pad: " + b"a" * 10_000, 0.05, hub):
        wfile.write(byte)
        wfile.flush()


def test_dripping_headers_meet_the_deadline(world):
    rewrite(world, when(kind="resolve", method="HEAD", filename="config.json"),
            lambda reply: dataclasses.replace(reply, writer=dripping_headers))
    started = time.monotonic()
    with pytest.raises(TransferError, match=r"HEAD .*config.json: not done within its deadline of 1.0 s") as exc:
        world.download(limits=dataclasses.replace(FAST, head_deadline=1.0))
    named(exc)
    assert time.monotonic() - started < 1.0 + FAST.read_timeout


def test_a_body_at_an_acceptable_rate_still_meets_the_file_deadline(world):
    # The rate floor out of the way (one window of 1e9 s): only the deadline, grace + size / rate, can stop it.
    limits = dataclasses.replace(FAST, min_rate=1e9, rate_window=1e9, grace=1.0)
    rewrite(world, when(kind="lfs", method="GET"),
            lambda reply: dataclasses.replace(reply, body=drip(WEIGHTS, 0.01, world.hub)))
    started = time.monotonic()
    with pytest.raises(TransferError, match="org/tiny/model.safetensors: not done within its deadline") as exc:
        world.download(limits=limits)
    named(exc)
    assert time.monotonic() - started < 1.0 + FAST.read_timeout


def silent(wfile, hub):
    hub.stopping.wait(5)


@pytest.mark.parametrize("phase, message", [("HEAD", "cannot reach .* timed out"), ("GET", "interrupted .*timed out")])
def test_a_silent_server_times_out(world, phase, message):
    kind = "resolve" if phase == "HEAD" else "lfs"
    rewrite(world, when(kind=kind, method=phase), lambda reply: dataclasses.replace(reply, writer=silent))
    started = time.monotonic()
    with pytest.raises(ModelSourceError, match=message) as exc:
        world.download(limits=dataclasses.replace(FAST, read_timeout=0.5))
    named(exc)
    assert time.monotonic() - started < 3


# ------------------------------------------------------------------- commits


def test_a_commit_asked_for_must_be_the_commit_served(world):
    with pytest.raises(TransferError, match=f"asked for commit {OTHER_COMMIT}, the server answered") as exc:
        world.download(revision=OTHER_COMMIT)
    named(exc)


def test_a_branch_moving_mid_download_cannot_scatter_the_snapshot(world):
    # config.json comes from COMMIT; then the server says the weights are at another commit.
    rewrite(world, when(kind="resolve", filename="model.safetensors"),
            lambda r: r.with_headers(X_Repo_Commit=OTHER_COMMIT))
    message = f"asked for commit {COMMIT}, the server answered X-Repo-Commit {OTHER_COMMIT}"
    with pytest.raises(TransferError, match=message):
        world.download()
    assert not (RepoCache(world.cache, REPO).folder / "snapshots" / OTHER_COMMIT).exists()


# ------------------------------------------------------------------- malformed index.json / modules.json


@pytest.mark.parametrize(
    "index, message",
    [
        (b"[]", "'weight_map' must be an object"),
        (b'{"weight_map": []}', "'weight_map' must be an object"),
        (b'{"weight_map": {"a": 5}}', r"weight_map\['a'\] shard must be a string"),
        (b'{"weight_map": {"a": "config.json"}}', "does not end with .safetensors"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON: RecursionError"),
        (b'{"weight_map": {"a": "x.safetensors"', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_a_malformed_index_is_a_named_error(world, index, message):
    world.files.pop("model.safetensors")
    world.files["model.safetensors.index.json"] = index
    with pytest.raises(ModelSourceError, match=message) as exc:
        world.download()
    named(exc)


def test_an_index_naming_too_many_shards_is_refused(world):
    world.files.pop("model.safetensors")
    weight_map = {f"t{i}": f"model-{i:05d}.safetensors" for i in range(download_module.MAX_SHARDS + 1)}
    world.files["model.safetensors.index.json"] = json.dumps({"weight_map": weight_map}).encode()
    with pytest.raises(ModelSourceError, match="more than 1000 shard files") as exc:
        world.download()
    named(exc)
    assert not world.hub.seen(kind="lfs")


def test_an_oversized_index_is_not_parsed(world, monkeypatch):
    monkeypatch.setattr(download_module, "MAX_JSON_BYTES", 1000)
    world.files.pop("model.safetensors")
    world.files["model.safetensors.index.json"] = json.dumps({"weight_map": {}, "pad": "x" * 2000}).encode()
    with pytest.raises(ModelSourceError, match="more than 1000 is not a real one") as exc:
        world.download()
    named(exc)


@pytest.mark.parametrize(
    "modules, message",
    [
        ({"path": "1_Pooling"}, "must be a list of module objects"),
        (["1_Pooling"], "must be a list of module objects"),
        ([{"path": "1_Pooling", "type": 7}], "module 0 'type' must be a string"),
        ([{"path": 7, "type": "Pooling"}], "module 0 'path' must be a string"),
        ([{"path": "", "type": "x"}] * 65, "at most 64"),
    ],
)
def test_a_malformed_modules_json_is_a_named_error(world, modules, message):
    world.files["modules.json"] = json.dumps(modules).encode()
    with pytest.raises(ModelSourceError, match=message) as exc:
        world.download()
    named(exc)


# ------------------------------------------------------------------- two processes, one cache

CHILD = "import sys; from minidistil.hub.download import download_model; print(download_model('org/tiny'))"


def hold_lfs_until_both_asked(world):
    """Serve the weights only once both processes have asked for them: the two downloads overlap."""

    def hold(request, reply):
        if request.kind == "lfs" and request.method == "GET":
            end = time.monotonic() + 10
            while len([r for r in world.hub.seen("HEAD") if r.filename == "model.safetensors"]) < 2:
                assert time.monotonic() < end, "the second process never asked"
                time.sleep(0.02)
            time.sleep(0.3)  # the second, past its HEAD, is now at the lock
        return reply

    world.hub.rewrite = hold


def run_two(world):
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = []
    for child in children:
        try:
            out, err = child.communicate(timeout=60)
        finally:
            child.kill()
        results.append((child.returncode, out.strip(), err))
    return results


@pytest.mark.parametrize("partial", [0, 5000], ids=["fresh", "both-resuming"])
def test_two_processes_share_one_cache(world, partial):
    if partial:
        partial_blob(world, partial)
    hold_lfs_until_both_asked(world)
    results = run_two(world)
    assert [code for code, _, _ in results] == [0, 0], results
    snapshot = RepoCache(world.cache, REPO).snapshot(COMMIT)
    assert {out for _, out, _ in results} == {str(snapshot)}
    assert (snapshot / "model.safetensors").read_bytes() == WEIGHTS
    # One process wrote the blob; the other waited on its lock and reused it.
    assert [r.headers.get("Range") for r in world.hub.seen("GET", "lfs")] == [f"bytes={partial}-" if partial else None]
    assert not list(world.blobs.glob("*.incomplete"))


def test_a_lock_held_too_long_is_a_named_error(world):
    etag = git_blob_sha1(CONFIG)
    lock = world.cache / ".locks" / "models--org--tiny" / f"{etag}.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(TransferError, match=f"another process has held {lock}") as exc:
            world.download(limits=dataclasses.replace(FAST, min_rate=1e9, grace=0.2))
    named(exc)
