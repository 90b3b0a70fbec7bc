from __future__ import annotations

import hashlib

import pytest

from intake.archive import Archive


def test_store_is_content_addressed_and_idempotent(tmp_path):
    archive = Archive(tmp_path)
    raw = b"Subject: x\r\n\r\nbody\r\n"
    digest, rel = archive.store(raw)
    assert digest == hashlib.sha256(raw).hexdigest()
    assert rel == f"{digest[:2]}/{digest[2:4]}/{digest}.eml"
    assert (tmp_path / rel).read_bytes() == raw
    assert archive.store(raw) == (digest, rel)
    assert archive.read(rel) == raw
    assert not list(tmp_path.rglob(".tmp-*"))  # no temp file left behind


def test_read_refuses_paths_outside_the_archive(tmp_path):
    (tmp_path / "secret").write_text("x")
    archive = Archive(tmp_path / "archive")
    with pytest.raises(ValueError):
        archive.read("../secret")
