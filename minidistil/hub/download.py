"""The hub's download protocol, as huggingface_hub speaks it, against a server that may be hostile.

`download_file` asks `HEAD {endpoint}/{repo}/resolve/{revision}/{file}` for the commit
(`X-Repo-Commit`), the content hash (`X-Linked-Etag` on an LFS redirect, else `ETag`) and the size
(`X-Linked-Size`, else `Content-Length`), and checks all three before any path is made of them.
Holding the blob's lock, it GETs the content into `blobs/<etag>.incomplete` (resuming with a Range
request), never past the announced size, and renames it to `blobs/<etag>` only when the hash
matches; the snapshot entry is then a symlink to the blob. `download_model` fetches what a model
needs, every file at the commit its config.json came from.
"""

import functools
import http.client
import json
import os
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..checkpoints.loading import WEIGHT_FILES
from ..errors import ModelSourceError
from ..progress import Progress
from .cache import RepoCache
from .errors import FileNotOnHub, IntegrityError, TransferError
from .integrity import verify
from .names import check_commit, check_file_name, check_repo_path, check_revision, is_commit, normalize_etag
from .settings import DEFAULT_REVISION, hub_cache_dir, hub_endpoint, hub_token, is_offline
from .transport import (
    REDIRECTS,
    Deadline,
    Limits,
    RateFloor,
    check_http_url,
    copy_body,
    open_following,
    origin,
    redirect_target,
    send,
)

# Files fetched for a model when they exist (config.json is required).
OPTIONAL_FILES = (
    "tokenizer_config.json",
    "vocab.txt",
    "tokenizer.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)
# What counts as a model's weights, in the checkpoint loader's order (safetensors, .bin, tf_model.h5,
# flax_model.msgpack, model.onnx): the first the hub has is fetched. An ONNX export with external data
# files needs a local directory (their names live inside the graph).

# Bounds on what an index or modules.json may ask for: real ones hold a few dozen shards and modules
# in a few hundred kB; a hostile one must not turn into a million requests or a huge parse.
MAX_SHARDS = 1000
MAX_MODULES = 64
MAX_JSON_BYTES = 16 << 20
_SIZE = re.compile(r"^[0-9]{1,18}$")
_CONTENT_RANGE = re.compile(r"^bytes ([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18}|\*)$")


@dataclass(frozen=True)
class FileMetadata:
    commit: str  # 40 hex digits
    etag: str  # the content's sha256 (LFS) or git blob SHA-1, 64 or 40 hex digits
    size: int
    location: str  # where to GET the content: the resolve URL, or its storage redirect


def _headers(token=None):
    headers = {"User-Agent": "minidistil/0.1", "Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _size_header(headers, name, field):
    raw = headers.get(name)
    if raw is None:
        return None
    if not _SIZE.match(raw.strip()):
        raise TransferError(f"{field}: {name} {raw[:40]!r} is not a byte count")
    return int(raw)


def _metadata(url, headers, revision, location, redirected):
    commit = headers.get("X-Repo-Commit")
    if commit is None:
        if not is_commit(revision):
            raise TransferError(f"{url}: the server sent no X-Repo-Commit header (is it a hub?)")
        commit = revision
    check_commit(commit, f"{url}: X-Repo-Commit")
    if is_commit(revision) and commit != revision:
        raise TransferError(f"{url}: asked for commit {revision}, the server answered X-Repo-Commit {commit}")
    etag = normalize_etag(headers.get("X-Linked-Etag") or headers.get("ETag"), f"{url}: ETag")
    # A redirect's own Content-Length is that of the redirect, not of the file.
    size = _size_header(headers, "X-Linked-Size", url)
    if size is None and not redirected:
        size = _size_header(headers, "Content-Length", url)
    if size is None:
        names = "X-Linked-Size" if redirected else "X-Linked-Size or Content-Length"
        raise TransferError(f"{url}: the server announced no file size ({names})")
    return FileMetadata(commit, etag, size, location)


def file_metadata(url, *, revision, token, limits):
    """HEAD `url` the way the hub expects and check what it says (FileMetadata).

    A relative redirect (a renamed repo) is asked again, with the token (same origin); an absolute
    one is the file's storage location, to GET without the token when it is another origin.
    """
    with Deadline(limits.head_deadline, f"HEAD {url}") as deadline:
        for _ in range(limits.max_redirects + 1):
            response = send("HEAD", url, headers=_headers(token), deadline=deadline, timeout=limits.read_timeout)
            response.close()
            if response.status == 404:
                raise FileNotOnHub(f"{url}: HTTP 404")
            if response.status in REDIRECTS:
                target, relative = redirect_target(url, response)
                if relative:
                    url = target
                    continue
                return _metadata(url, response.headers, revision, location=target, redirected=True)
            if not 200 <= response.status < 300:
                raise TransferError(f"{url}: HTTP {response.status}")
            return _metadata(url, response.headers, revision, location=url, redirected=False)
    raise TransferError(f"{url}: more than {limits.max_redirects} redirects")


def _body_start(response, url, have, size):
    """Where the body of a GET (with `Range: bytes=have-` when have > 0) starts in the file."""
    length = _size_header(response.headers, "Content-Length", url)
    if response.status == 200:
        start = 0  # a server may ignore the Range: start again
    elif response.status == 206 and have:
        content_range = response.headers.get("Content-Range", "")
        match = _CONTENT_RANGE.match(content_range.strip())
        if not match or int(match[1]) != have or int(match[2]) != size - 1 or match[3] not in (str(size), "*"):
            raise TransferError(f"{url}: Content-Range {content_range!r} is not bytes {have}-{size - 1}/{size}")
        start = have
    else:
        raise TransferError(f"{url}: HTTP {response.status}")
    if length is not None and length != size - start:
        raise TransferError(f"{url}: Content-Length {length}, but the file has {size - start} bytes left to send")
    return start


def _get_into(meta, incomplete, what, *, endpoint, token, limits, progress):
    """GET the file into `incomplete`, resuming from what is there; returns its final size."""
    incomplete.touch()
    have = incomplete.stat().st_size
    if have > meta.size:  # left by a server that announced another size for this hash
        incomplete.unlink()
        incomplete.touch()
        have = 0
    if have == meta.size:
        return have
    token = token if origin(meta.location) == origin(endpoint) else None
    with Deadline(limits.deadline_for(meta.size - have), f"download of {what}") as deadline:
        headers = _headers() | ({"Range": f"bytes={have}-"} if have else {})
        url, response = open_following(meta.location, token=token, headers=headers, deadline=deadline, limits=limits)
        with response:
            if response.status == 416 and have:
                incomplete.unlink()
                raise TransferError(f"{url}: the server refused to resume {what} (HTTP 416); run again to restart")
            start = _body_start(response, url, have, meta.size)
            bar = Progress(total=meta.size, desc=Path(what).name, enabled=progress)
            bar.n = start
            floor = RateFloor(limits.min_rate, limits.rate_window, f"download of {what}")
            try:
                with open(incomplete, "r+b") as f:
                    f.seek(start)
                    f.truncate()
                    copy_body(response, f, meta.size - start, deadline=deadline, floor=floor, on_chunk=bar.update)
            finally:
                bar.close()
    return incomplete.stat().st_size


def _fetch_blob(meta, blob, what, **get):
    incomplete = blob.with_name(blob.name + ".incomplete")
    blob.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(blob.parent).free
    if meta.size > free + (incomplete.stat().st_size if incomplete.exists() else 0):
        raise TransferError(f"{what}: the server announced {meta.size} bytes; {blob.parent} has {free} free")
    try:
        got = _get_into(meta, incomplete, what, **get)
    except ModelSourceError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransferError(f"download of {what} was interrupted ({reason}); run again to resume") from None
    if got != meta.size:
        raise TransferError(f"download of {what} stopped at {got} of {meta.size} bytes; run again to resume")
    try:
        verify(incomplete, meta.etag, what)
    except IntegrityError:
        incomplete.unlink()
        raise
    os.replace(incomplete, blob)


def download_file(
    repo_id, filename, revision=DEFAULT_REVISION, *, cache_dir=None, endpoint=None, progress=None, limits=Limits()
):
    """Fetch one file of `repo_id` into the cache and return its snapshot path.

    Raises ModelSourceError (FileNotOnHub for a 404; UnsafeName, IntegrityError, TransferError for
    what a server must not do), every message naming the file and the field at fault.
    """
    repo = RepoCache(cache_dir if cache_dir is not None else hub_cache_dir(), repo_id)
    check_repo_path(filename, "file name")
    check_revision(revision)
    if is_offline():
        raise ModelSourceError(f"cannot download {repo_id}/{filename}: HF_HUB_OFFLINE is set")
    endpoint = check_http_url((endpoint or hub_endpoint()).rstrip("/"), "hub endpoint")
    url = f"{endpoint}/{repo_id}/resolve/{urllib.parse.quote(revision, safe='')}/{urllib.parse.quote(filename)}"
    what = f"{repo_id}/{filename}"
    token = hub_token()
    try:
        meta = file_metadata(url, revision=revision, token=token, limits=limits)
    except FileNotOnHub:
        raise FileNotOnHub(f"{repo_id}: no file {filename} at revision {revision} ({url}: HTTP 404)") from None
    except ModelSourceError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelSourceError(f"cannot reach {endpoint} to download {repo_id}: {reason}") from None

    pointer = repo.pointer(meta.commit, filename)
    blob = repo.blob(meta.etag)
    try:
        # The holder of the lock is itself bounded by deadline_for(size); a waiter gives it that and a grace.
        with repo.blob_lock(meta.etag, wait=limits.deadline_for(meta.size) + limits.grace):
            if not blob.is_file():  # else another process finished it while this one waited
                _fetch_blob(meta, blob, what, endpoint=endpoint, token=token, limits=limits, progress=progress)
            repo.link(blob, pointer)
        if revision != meta.commit:
            repo.write_ref(revision, meta.commit)
    except ModelSourceError:
        raise
    except OSError as exc:
        raise ModelSourceError(f"cannot write {what} into the cache at {repo.folder}: {exc}") from None
    return pointer


def _read_json(path, what):
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ModelSourceError(f"{what} has {size} bytes; more than {MAX_JSON_BYTES} is not a real one")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested deeper than Python recurses
        raise ModelSourceError(f"{what} is not valid JSON: {type(exc).__name__}: {str(exc)[:200]}") from None


def shard_names(index_path, index_name):
    """The shard files an `*.index.json` names in its weight_map, each a plain file name of the right kind."""
    what = f"{index_name} ({index_path})"
    index = _read_json(index_path, what)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ModelSourceError(f"{what}: 'weight_map' must be an object of tensor name -> shard file")
    suffix = "." + index_name.removesuffix(".index.json").rsplit(".", 1)[1]  # .safetensors or .bin
    shards = set()
    for tensor, shard in weight_map.items():
        field = f"{what}: weight_map[{tensor!r:.80}] shard"
        check_file_name(shard, field)
        if not shard.endswith(suffix):
            raise ModelSourceError(f"{field} {shard!r} does not end with {suffix}")
        shards.add(shard)
        if len(shards) > MAX_SHARDS:
            raise ModelSourceError(f"{what}: weight_map names more than {MAX_SHARDS} shard files")
    return sorted(shards)


def pooling_paths(modules_path):
    """The folders of the pooling modules a sentence-transformers `modules.json` lists, each checked."""
    what = f"modules.json ({modules_path})"
    modules = _read_json(modules_path, what)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ModelSourceError(f"{what} must be a list of module objects")
    if len(modules) > MAX_MODULES:
        raise ModelSourceError(f"{what} lists {len(modules)} modules; at most {MAX_MODULES} are expected")
    paths = []
    for i, module in enumerate(modules):
        path, kind = module.get("path", ""), module.get("type", "")
        if not isinstance(kind, str):
            raise ModelSourceError(f"{what}: module {i} 'type' must be a string, got {kind!r:.80}")
        if path == "":  # the transformer itself, at the repo's root
            continue
        check_repo_path(path, f"{what}: module {i} 'path'")
        if kind.endswith("Pooling"):
            paths.append(path)
    return paths


def download_model(
    repo_id, revision=DEFAULT_REVISION, *, cache_dir=None, endpoint=None, progress=None, limits=Limits()
):
    """Fetch what a model needs (config, weights, tokenizer, sentence-transformers files); return the snapshot dir."""
    fetch = functools.partial(
        download_file, repo_id, cache_dir=cache_dir, endpoint=endpoint, progress=progress, limits=limits
    )
    try:
        config = fetch("config.json", revision)
    except FileNotOnHub:
        raise ModelSourceError(
            f"unknown model {repo_id!r}: {endpoint or hub_endpoint()} has no config.json for it at revision {revision}"
        ) from None
    snapshot = config.parent
    commit = snapshot.name  # the rest from the same commit, even if the branch moves meanwhile

    def optional(filename):
        try:
            return fetch(filename, commit)
        except FileNotOnHub:
            return None

    for name in WEIGHT_FILES:
        path = optional(name)
        if path is None:
            continue
        if name.endswith(".index.json"):
            for shard in shard_names(path, name):
                fetch(shard, commit)
        break
    else:
        raise ModelSourceError(f"{repo_id}: no weights found ({', '.join(WEIGHT_FILES)})")

    for name in OPTIONAL_FILES:
        optional(name)
    modules = snapshot / "modules.json"
    if modules.is_file():
        for folder in pooling_paths(modules):
            optional(f"{folder}/config.json")
    return snapshot
