"""The hub cache layout, as huggingface_hub writes it, and the operations on it that must be safe to race.

    <cache>/models--ORG--NAME/blobs/<etag>               the content, named by its hash
    <cache>/models--ORG--NAME/snapshots/<commit>/<file>  a symlink to the blob
    <cache>/models--ORG--NAME/refs/<revision>            the commit a branch or tag pointed to
    <cache>/.locks/models--ORG--NAME/<etag>.lock         held while the blob is written

Every part of a path is checked by `names` first. Links and refs are written under a temporary
name and renamed into place, so two processes never see (or trip over) a half-made one. The lock is
an fcntl.flock on the lock file huggingface_hub uses (its filelock takes the same flock), so two
minidistil processes, or minidistil and huggingface_hub, never write one `.incomplete` together.
"""

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import time
from pathlib import Path

from .errors import TransferError
from .names import check_commit, check_inside, check_repo_id, check_repo_path, check_revision

_LOCK_POLL_S = 0.05
_HELD_ELSEWHERE = (errno.EAGAIN, errno.EACCES)  # some file systems say EACCES for a lock held elsewhere


def repo_folder_name(repo_id):
    """models--ORG--NAME, the cache folder of a model repo."""
    return "models--" + check_repo_id(repo_id).replace("/", "--")


class RepoCache:
    """The cache folder of one repo."""

    def __init__(self, cache_dir, repo_id):
        self.root = Path(cache_dir)
        self.repo_id = repo_id
        self.folder = self.root / repo_folder_name(repo_id)

    def blob(self, etag):
        """blobs/<etag>; `etag` comes from names.normalize_etag (40 or 64 hex digits)."""
        return self.folder / "blobs" / etag

    def snapshot(self, commit):
        return self.folder / "snapshots" / check_commit(commit, "commit")

    def pointer(self, commit, filename):
        """snapshots/<commit>/<filename>, checked to stay inside the snapshot once symlinks are resolved."""
        snapshot = self.snapshot(commit)
        pointer = snapshot / check_repo_path(filename, "file name")
        check_inside(snapshot, pointer.parent, f"{self.repo_id}/{filename}")
        return pointer

    def read_ref(self, revision):
        """The commit refs/<revision> records, or None when there is no such ref."""
        ref = self.folder / "refs" / check_revision(revision)
        if not ref.is_file():
            return None
        return check_commit(ref.read_text(errors="replace").strip(), f"ref file {ref}")

    def write_ref(self, revision, commit):
        ref = check_inside(self.folder / "refs", self.folder / "refs" / check_revision(revision), "revision")
        _replace(ref, lambda tmp: tmp.write_text(check_commit(commit, "commit")))

    def link(self, blob, pointer):
        """Make `pointer` a relative symlink to `blob` (a copy where symlinks are not allowed)."""

        def make(tmp):
            try:
                tmp.symlink_to(os.path.relpath(blob, tmp.parent))
            except OSError:  # no symlinks here (e.g. Windows without developer mode)
                shutil.copyfile(blob, tmp)

        _replace(pointer, make)

    @contextlib.contextmanager
    def blob_lock(self, etag, wait):
        """Hold the blob's lock; wait up to `wait` seconds for another process to release it."""
        path = self.root / ".locks" / self.folder.name / f"{etag}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            expires = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in _HELD_ELSEWHERE:
                        raise
                    if time.monotonic() > expires:
                        raise TransferError(
                            f"{self.repo_id}: another process has held {path} for more than {wait:.0f} s"
                        ) from None
                    time.sleep(_LOCK_POLL_S)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _replace(dest, make):
    """Create `dest` by `make(tmp)` on a temporary name beside it, then rename it into place atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(8)}")  # short: dest.name may be 255 bytes
    try:
        make(tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
