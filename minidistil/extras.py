"""Optional dependencies: import one, or say which extra of minidistil installs it.

    h5py = import_extra("h5py", "tf", "reading tf_model.h5")
    # MissingExtraError: reading tf_model.h5 needs the h5py package: pip install "minidistil[tf]"

The core install is numpy, numba, safetensors and regex; everything else is an extra named for its
job (pyproject.toml), imported only where that job is done.
"""

import importlib

from .errors import MissingExtraError


def import_extra(module: str, extra: str, purpose: str):
    """The imported `module`, or MissingExtraError naming `purpose` and `pip install "minidistil[extra]"`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{purpose} needs the {module} package: pip install \"minidistil[{extra}]\" ({exc})"
        ) from exc
