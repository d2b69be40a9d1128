"""One atomic write: the old file or the new one after any failure, fsync'ed, and the process umask untouched."""

from __future__ import annotations

import threading

import pytest

from heqis.fileio import atomic_write


def current_umask() -> int:
    """The umask as the kernel reports it (Linux), read without changing it."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    pytest.skip("no /proc/self/status Umask line here")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    folder = tmp_path / "out"
    target = folder / "f.json"
    atomic_write(target, b"old")

    def half(fh) -> None:
        fh.write(b"new but unfinished")
        raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        atomic_write(target, half)
    assert target.read_bytes() == b"old"
    assert [p.name for p in folder.iterdir()] == ["f.json"]


def test_modes_follow_the_umask_or_the_explicit_mode_and_the_umask_is_never_changed(tmp_path):
    before = current_umask()
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:              # another thread of the same process must never see another umask
        while not stop.is_set():
            seen.append(current_umask())

    t = threading.Thread(target=watch)
    t.start()
    try:
        for i in range(200):
            atomic_write(tmp_path / f"plain{i}", b"x")
            atomic_write(tmp_path / f"secret{i}", b"s", mode=0o600)
    finally:
        stop.set()
        t.join()
    assert set(seen) == {before}
    assert (tmp_path / "plain0").stat().st_mode & 0o777 == 0o666 & ~before
    assert (tmp_path / "secret0").stat().st_mode & 0o777 == 0o600


def test_every_writer_uses_the_one_atomic_write():
    """No second atomic-write helper and no umask calls anywhere in the package."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("heqis", "console", "remote"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if path.name != "fileio.py" and ("os.replace(" in text or "mkstemp(" in text or "os.umask(" in text):
                offenders.append(str(path.relative_to(root)))
    assert not offenders, offenders
