"""Atomic writes: the old file or the new one, never half, and no temp file left behind."""

import pytest

from diverse_embed.files import atomic_write


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "state.json"
    atomic_write(target, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
