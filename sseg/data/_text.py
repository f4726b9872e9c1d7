"""Line reading helpers that turn bad lines into :class:`InputError` with file and line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, stripped_text)`` for every non-blank line (1-based numbers)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", path) from exc
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line:
            yield number, line


def parse_ints(fields: list[str], path: str | Path, line: int, what: str) -> list[int]:
    """Parse integer fields or raise an InputError naming ``what`` was expected."""
    try:
        return [int(f) for f in fields]
    except ValueError:
        raise InputError(f"expected {what}, got {' '.join(fields)!r}", path, line) from None
