"""The ways a download can be refused; each is a ModelSourceError naming the file and field at fault."""

from ..errors import ModelSourceError


class FileNotOnHub(ModelSourceError):
    """The server answered 404 for a file."""


class UnsafeName(ModelSourceError):
    """A name from the server or a file would not be a plain path inside the cache."""


class IntegrityError(ModelSourceError):
    """A downloaded file's size or hash differs from what the server announced."""


class TransferError(ModelSourceError):
    """The server broke the protocol: bad redirect, bad headers, too slow, cut short, past its deadline."""
