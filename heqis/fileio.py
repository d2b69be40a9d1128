"""File helpers with no heavy imports (the boards use them too): sha256, JSON, and one atomic write.

``atomic_write`` is the only way HEQIS replaces a file (docs/architecture.md, "Invariants"): the
new content goes to a temporary file beside the target, is flushed and fsync'ed, renamed over the
target, and the directory is fsync'ed so the rename itself survives a power cut. A crash leaves
either the old file or the new one, never half of either. The temporary file is created with mode
0666 and the kernel applies the process umask, so nothing here reads or changes the umask (a
process-wide setting other threads rely on); an explicit ``mode`` (0600 secrets) is set on the
open file before any byte is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from heqis.errors import HeqisError

Writer = Callable[[IO[bytes]], Any]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, payload: bytes | Writer, mode: int | None = None, durable: bool = True) -> None:
    """Replace ``path`` with ``payload`` (bytes, or a function that writes to a binary file object).

    ``durable=False`` skips the fsyncs: the file still appears whole or not at all, and the caller
    makes a batch of such files durable at once (the parallel data writers, before their manifest)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            if isinstance(payload, (bytes, bytearray, memoryview)):
                fh.write(payload)
            else:
                payload(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def write_json(path: Path, document: Any, mode: int | None = None) -> None:
    """``document`` as indented UTF-8 JSON, atomically."""
    text = json.dumps(document, indent=2, ensure_ascii=False, default=json_default) + "\n"
    atomic_write(path, text.encode("utf-8"), mode)


def json_default(value: Any) -> Any:
    """What json.dumps cannot write itself: paths, dates, numpy scalars and arrays (every HEQIS JSON writer)."""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):      # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path, what: str, hint: str | None = None) -> Any:
    """A JSON file; one clear HeqisError naming ``path`` when it is missing or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HeqisError(f"{path}: {what} not found", hint=hint) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HeqisError(f"{path}: {what} is not valid JSON ({exc})", hint=hint) from None
