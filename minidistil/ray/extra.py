"""Importing the packages of the `ray` extra, with an error that says how to install them."""

from importlib import import_module

from .errors import EXTRA_HINT, MissingExtraError


def require(module, purpose):
    """Import `module` (e.g. "ray", "pyarrow.parquet"), or say that `purpose` needs the ray extra."""
    try:
        return import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise MissingExtraError(f"{purpose} needs {top}, which is not installed: {EXTRA_HINT}") from exc
