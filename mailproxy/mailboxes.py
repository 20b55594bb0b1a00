"""Read messages from the places people keep them: .eml files, mbox files, Maildirs and folders of .eml
files. Used by ``mailproxy scan``. One unreadable message is reported and the rest still read."""

from __future__ import annotations

import mailbox
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Message:
    name: str  # path, or "path:key" inside a mailbox
    data: bytes
    error: str | None = None


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(5) == b"From "


def _mbox(path: Path) -> Iterator[Message]:
    box = mailbox.mbox(path, create=False)
    try:
        for i, key in enumerate(box.iterkeys()):
            name = f"{path}:{i + 1}"
            try:
                yield Message(name, box.get_bytes(key))
            except (OSError, ValueError, KeyError) as exc:
                yield Message(name, b"", str(exc))
    finally:
        box.close()


def _maildir(path: Path) -> Iterator[Message]:
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.iterkeys()):
        name = f"{path}:{key}"
        try:
            yield Message(name, box.get_bytes(key))
        except (OSError, ValueError, KeyError) as exc:
            yield Message(name, b"", str(exc))


def _file(path: Path) -> Iterator[Message]:
    try:
        if _is_mbox(path):
            yield from _mbox(path)
        else:
            yield Message(str(path), path.read_bytes())
    except OSError as exc:
        yield Message(str(path), b"", exc.strerror or str(exc))


def _one(path: Path) -> Iterator[Message]:
    if path.is_dir():
        if (path / "cur").is_dir() and (path / "new").is_dir():
            yield from _maildir(path)
        else:
            for child in sorted(path.rglob("*.eml")):
                yield from _file(child)
    elif path.exists():
        yield from _file(path)
    else:
        yield Message(str(path), b"", "no such file or directory")


def read_messages(paths: Iterable[Path | str]) -> tuple[Iterator[Message], int | None]:
    """The messages at ``paths``, lazily, and their count when it is cheap to know (plain files)."""
    resolved = [Path(p) for p in paths]
    total: int | None = 0
    for p in resolved:
        if p.is_dir() and not (p / "cur").is_dir():
            total = (total or 0) + sum(1 for _ in p.rglob("*.eml"))
        elif p.is_file() and total is not None:
            total = None if _safe_is_mbox(p) else total + 1
        else:
            total = None
    return (m for p in resolved for m in _one(p)), total


def _safe_is_mbox(path: Path) -> bool:
    try:
        return _is_mbox(path)
    except OSError:
        return False
