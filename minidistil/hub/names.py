"""Checks on every name that becomes part of a path in the cache.

A hub is untrusted: the commit (`X-Repo-Commit`), the ETag that names a blob, the shard names of an
`*.index.json` and the module paths of `modules.json` all come from the server, and the revision and
file names from the user. Each is checked here before anything is created, so that no value can make
`snapshots/<commit>/<file>`, `blobs/<etag>` or `refs/<revision>` point outside the repo's folder:
no absolute path, no `.` or `..` segment, no separator where none belongs, no backslash, colon or
control character (a Windows path separator, a drive, a terminal escape). `check_inside` then
confirms the final path, after symlinks, is where the validated parts say.
"""

import re
from pathlib import Path

from .errors import UnsafeName

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA1_OR_SHA256 = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
# A git ref segment, conservatively: no leading dot (so neither "." nor ".."), none of git's specials.
_REF_SEGMENT = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$")
_FORBIDDEN_IN_SEGMENT = re.compile(r"[\\:\x00-\x1f\x7f]")
_MAX_SEGMENT_BYTES = 255  # NAME_MAX of common file systems
_MAX_PATH_CHARS = 1024
_MAX_REPO_ID_CHARS = 96  # the hub's own limit


def is_repo_id(name):
    """True when `name` has the shape of a hub repo id (NAME or ORG/NAME)."""
    return isinstance(name, str) and len(name) <= _MAX_REPO_ID_CHARS and bool(_REPO_ID.match(name))


def check_repo_id(name):
    if not is_repo_id(name):
        raise UnsafeName(f"repo id {name!r} is not ORG/NAME (letters, digits, '.', '_', '-'; at most 96 characters)")
    return name


def check_commit(value, field):
    """A commit hash: 40 lowercase hex digits."""
    if not isinstance(value, str) or not _COMMIT.match(value):
        raise UnsafeName(f"{field} {value!r} is not a commit hash (40 lowercase hex digits)")
    return value


def is_commit(value):
    return isinstance(value, str) and bool(_COMMIT.match(value))


def check_revision(value):
    """A branch, tag or commit: '/'-separated git ref segments (e.g. 'main', 'v1.0', 'refs/pr/1')."""
    if not isinstance(value, str) or not 0 < len(value) <= 255:
        raise UnsafeName(f"revision {value!r} must be a branch, tag or commit name of 1 to 255 characters")
    if not all(_REF_SEGMENT.match(s) and not s.endswith(".lock") for s in value.split("/")):
        raise UnsafeName(
            f"revision {value!r} is not a plain ref name ('/'-separated segments of letters, digits, '.', '_', '+',"
            " '-', none starting with '.')"
        )
    return value


def normalize_etag(value, field):
    """The hash an ETag carries, unquoted and lowercase; it names the blob, so it must be a SHA-1 or a sha256.

    The hub sends the git blob SHA-1 for regular files and the sha256 for LFS files (`X-Linked-Etag`);
    anything else could not be verified and could not safely name a file.
    """
    if value is None:
        raise UnsafeName(f"{field}: the server sent none (neither X-Linked-Etag nor ETag)")
    etag = value.strip()
    etag = (etag[2:] if etag.startswith("W/") else etag).strip('"').lower()
    if not _SHA1_OR_SHA256.match(etag):
        raise UnsafeName(f"{field} {value!r} is neither a git blob SHA-1 nor a sha256 (40 or 64 hex digits)")
    return etag


def check_file_name(value, field):
    """One path segment: a file name with no directory part."""
    if not isinstance(value, str):
        raise UnsafeName(f"{field} must be a string, got {type(value).__name__} {value!r}")
    if value in ("", ".", "..") or "/" in value or _FORBIDDEN_IN_SEGMENT.search(value):
        raise UnsafeName(
            f"{field} {value!r} is not a plain file name (no '/', '\\', ':', control characters, '.' or '..')"
        )
    if len(value.encode("utf-8", "surrogatepass")) > _MAX_SEGMENT_BYTES:
        raise UnsafeName(f"{field} {value[:40]!r}... is longer than {_MAX_SEGMENT_BYTES} bytes")
    return value


def check_repo_path(value, field):
    """A file's path inside a repo: relative, '/'-separated, every segment a plain file name."""
    if not isinstance(value, str):
        raise UnsafeName(f"{field} must be a string, got {type(value).__name__} {value!r}")
    if not 0 < len(value) <= _MAX_PATH_CHARS:
        raise UnsafeName(f"{field} {value[:40]!r} must have 1 to {_MAX_PATH_CHARS} characters")
    if value.startswith("/"):
        raise UnsafeName(f"{field} {value!r} is an absolute path; a path inside the repo is expected")
    for segment in value.split("/"):
        check_file_name(segment, f"{field} {value!r}: segment")
    return value


def check_inside(root, path, field):
    """`path` (symlinks resolved) lies inside `root`: the last guard before a file is created."""
    root, resolved = Path(root).resolve(), Path(path).resolve()
    if not resolved.is_relative_to(root):
        raise UnsafeName(f"{field}: {path} resolves to {resolved}, outside {root}")
    return Path(path)
