"""The environment variables that choose the hub, the cache and offline mode, as huggingface_hub reads them."""

import os
from pathlib import Path

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"


def _is_true(value):
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_offline():
    """True when $HF_HUB_OFFLINE or $TRANSFORMERS_OFFLINE asks for no network."""
    return _is_true(os.environ.get("HF_HUB_OFFLINE")) or _is_true(os.environ.get("TRANSFORMERS_OFFLINE"))


def progress_disabled():
    return _is_true(os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"))


def hub_endpoint():
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_token():
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


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
