"""JSON-lines reading with file and line numbers in every error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError
from ._text import read_lines


def read_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; each must be a JSON object."""
    for number, line in read_lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg})", path, number) from None
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object per line", path, number)
        yield number, obj


def number_field(obj: dict, key: str, path: str | Path, line: int) -> float:
    """A required finite number field."""
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InputError(f"{key!r} must be a number, got {value!r}", path, line)
    return float(value)


def video_field(obj: dict, path: str | Path, line: int) -> str:
    """The required ``"video"`` id (a non-empty string; integers are accepted)."""
    value = obj.get("video")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InputError(f"'video' must be a non-empty string, got {value!r}", path, line)
    return value
