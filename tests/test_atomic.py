"""Atomic writes: all-or-nothing, and file modes like a plain open() would give."""

from __future__ import annotations

import os

import pytest

from sseg.atomic import atomic_path, atomic_write_text


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_new_file_follows_umask_and_replaced_file_keeps_its_mode(tmp_path):
    old_umask = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.txt"
        atomic_write_text(fresh, "x")
        assert fresh.stat().st_mode & 0o777 == 0o640
        kept = tmp_path / "kept.txt"
        kept.write_text("a")
        kept.chmod(0o604)
        atomic_write_text(kept, "b")
        assert kept.stat().st_mode & 0o777 == 0o604 and kept.read_text() == "b"
    finally:
        os.umask(old_umask)


def test_all_or_nothing_removes_every_completed_file_on_failure(tmp_path):
    from sseg.atomic import all_or_nothing

    with pytest.raises(OSError), all_or_nothing() as written:
        for name in ("a.txt", "b.txt"):
            atomic_write_text(tmp_path / name, name)
            written.append(tmp_path / name)
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []
    with all_or_nothing() as written:
        atomic_write_text(tmp_path / "c.txt", "c")
        written.append(tmp_path / "c.txt")
    assert written == [tmp_path / "c.txt"] and (tmp_path / "c.txt").read_text() == "c"
