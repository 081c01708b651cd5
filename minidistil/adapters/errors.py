"""The error the adapter code raises on purpose."""

from ..errors import MinidistilError


class AdapterError(MinidistilError, ValueError):
    """An adapter or head is unknown, unsupported, or does not fit the model; the message names it."""
