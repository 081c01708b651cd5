"""Named error types: each says which file, tensor or field is at fault."""

import reprlib


class MinidistilError(Exception):
    """Base class of every error minidistil raises on purpose."""


class ConfigError(MinidistilError, ValueError):
    """A config field has an invalid value; the message names the field."""


class CheckpointError(MinidistilError, ValueError):
    """A checkpoint file is malformed, unsafe, or does not fit the config."""


class MissingHeadError(CheckpointError):
    """A checkpoint has no weights for the task head a class needs.

    source: the checkpoint; class_name: the class asked for; head: its schema.HEADS name.
    Front-ends read these to say, in their own terms, which models have that head.
    """

    def __init__(self, message, *, source, class_name, head):
        super().__init__(message)
        self.source, self.class_name, self.head = source, class_name, head


class TokenizerError(MinidistilError, ValueError):
    """A tokenizer file or argument is invalid."""


class AdapterError(MinidistilError, ValueError):
    """An adapter or head is unknown, unsupported, or does not fit the model; the message names it."""


class ModelSourceError(MinidistilError, OSError):
    """A model name or path cannot be resolved to files on disk."""


class QuantizationError(MinidistilError, ValueError):
    """Quantization was asked for where it cannot run (an unknown mode, a backend or model without it)."""


class MissingExtraError(MinidistilError, ImportError):
    """An optional part is not installed; the message names the extra that installs it."""


class _Shown(reprlib.Repr):
    def __init__(self, limit):
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 3, limit, limit, 40

    def repr_int(self, x, level):
        if x.bit_length() > 64:  # repr() of an int over 4300 digits raises ValueError
            return f"<an integer of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return repr(x)


def shown(value, limit=80):
    """A value from a file as an error message shows it: its repr, cut to `limit` characters.

    A hostile file can put a megabyte string, a 5000-digit integer or a list nested a thousand deep
    where a name or a shape belongs; the message must stay one readable line (and must not recurse).
    """
    text = _Shown(limit).repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
