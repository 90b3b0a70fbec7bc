"""The raw-message archive: every message as an `.eml` file named by its SHA-256.

Content addressing makes a second copy of the same bytes a no-op, and the write is durable before
the database row that points at it is committed: temp file, fsync, atomic rename, fsync of the
directory. A crash can leave a stray temp file, never a half-written message under its real name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class Archive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def relative_path(self, digest: str) -> str:
        return f"{digest[:2]}/{digest[2:4]}/{digest}.eml"

    def store(self, raw: bytes) -> tuple[str, str]:
        """Write `raw` durably (once); return (sha256, path relative to the archive root)."""
        digest = sha256_hex(raw)
        rel = self.relative_path(digest)
        target = self.root / rel
        if target.exists() and target.stat().st_size == len(raw):
            return digest, rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        return digest, rel

    def read(self, rel: str) -> bytes:
        path = (self.root / rel).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"archive path escapes the archive: {rel}")
        return path.read_bytes()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
