"""Shot list CSV: every detected shot, in the same PySceneDetect ``list-scenes`` layout as
the scene CSV (PySceneDetect's "scenes" are shots), so tools reading its CSVs read this."""

from __future__ import annotations

from typing import Any

from .csv_format import render_spans

SUFFIX = ".shots.csv"


def render(result: Any) -> str:
    """CSV text with a header row and one row per shot."""
    return render_spans(result.shots)
