"""Named error types: each says which file, tensor or field is at fault."""


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


class MissingExtraError(MinidistilError, ImportError):
    """An optional part is not installed; the message names the extra that installs it."""
