"""Output formats, one module each; :func:`write_outputs` writes the chosen ones atomically.

Each format module defines ``SUFFIX`` (file name ending) and
``render(result) -> str | bytes``. All files are rendered in memory first and
then written atomically; if any write fails, files written by that call are
removed again, so a failed run leaves no partial output behind.
:mod:`sseg.outputs.paths` checks output paths before any work starts.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

FORMATS = ("json", "csv", "shot_csv", "edl", "vtt", "ffmetadata", "html")
# written unless turned off; every other format is added on top of these
DEFAULT_FORMATS = ("json", "csv", "shot_csv")


def format_module(name: str):
    """The module implementing output format ``name``."""
    if name not in FORMATS:
        raise ValueError(f"unknown output format {name!r}")
    return importlib.import_module(f"sseg.outputs.{name}_format")


def output_paths(out_dir: str | Path, stem: str, formats: tuple[str, ...]) -> dict[str, Path]:
    """Where each format would be written."""
    return {name: Path(out_dir) / f"{stem}{format_module(name).SUFFIX}" for name in formats}


def write_outputs(
    result: Any, out_dir: str | Path, stem: str, formats: tuple[str, ...] = DEFAULT_FORMATS
) -> list[Path]:
    """Render and atomically write ``formats`` for ``result``; returns the written paths."""
    from ..atomic import all_or_nothing, atomic_path

    rendered = {}
    for name, path in output_paths(out_dir, stem, formats).items():
        data = format_module(name).render(result)
        rendered[path] = data.encode("utf-8") if isinstance(data, str) else data
    with all_or_nothing() as written:
        for path, data in rendered.items():
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
            written.append(path)
    return written
