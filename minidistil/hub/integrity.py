"""A blob is accepted only when its content hashes to the ETag that names it.

The hub's ETag is the sha256 of an LFS file's content and the git blob SHA-1 of a regular file's
(sha1 of b"blob <size>\\0" + content), so both kinds of file can be checked; `names.normalize_etag`
has already refused any ETag that is neither.
"""

import hashlib

from .errors import IntegrityError

_CHUNK = 1 << 20


def etag_kind(etag):
    return "sha256" if len(etag) == 64 else "git blob SHA-1"


def content_hash(path, etag):
    """The hash of the file at `path`, of the kind `etag` is."""
    if len(etag) == 64:
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path, etag, what):
    digest = content_hash(path, etag)
    if digest != etag:
        raise IntegrityError(f"checksum mismatch for {what}: {etag_kind(etag)} {digest}, the server says {etag}")
