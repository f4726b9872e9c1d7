"""Output paths checked before any decoding: a run that cannot write its results stops
at once with a one-line :class:`~sseg.errors.InputError`, not after all the processing."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError


def check_output_dir(out_dir: str | Path) -> None:
    """InputError unless ``out_dir`` is, or can be created as, a writable folder."""
    path = Path(out_dir)
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    if os.path.lexists(probe) and not probe.is_dir():
        if probe == path:
            raise InputError("output path exists and is not a folder", path)
        raise InputError(f"cannot create the output folder: {probe} is not a folder", path)
    if probe.is_dir() and not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == path else f" ({probe})"
        raise InputError(f"output folder is not writable{where}", path)


def check_output_files(paths: Iterable[str | Path]) -> None:
    """InputError if an output file would have to replace a folder."""
    for path in paths:
        if Path(path).is_dir():
            raise InputError("an output file would replace the folder of the same name", path)
