"""Self-contained HTML report: scene table with inline JPEG thumbnails and an SVG plot.

The plot shows each shot's P(shot ends a scene) at the shot's end time, the
decision threshold (dashed) and the chosen scene boundaries (vertical lines).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..segmentation.timecode import format_timecode

SUFFIX = ".report.html"
THUMB_HEIGHT = 72
MAX_THUMBS = 12  # per scene


def _jpeg(rgb: np.ndarray) -> str:
    from PIL import Image

    image = Image.fromarray(rgb)
    width = max(1, round(image.width * THUMB_HEIGHT / image.height))
    image = image.resize((width, THUMB_HEIGHT), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_svg(result: Any, width: int = 900, height: int = 220) -> str:
    """Inline SVG of boundary probability over time with the threshold line."""
    pad_l, pad_r, pad_t, pad_b = 44, 28, 12, 30  # right pad fits the last time label
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    t0 = result.shots[0].start_time if result.shots else 0.0
    t1 = result.shots[-1].end_time if result.shots else 1.0
    span = max(t1 - t0, 1e-6)

    def x(t: float) -> float:
        return pad_l + (t - t0) / span * w

    def y(p: float) -> float:
        return pad_t + (1.0 - p) * h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="boundary probability">',
        f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for scene in result.scenes[:-1]:
        bx = x(scene.end_time)
        parts.append(
            f'<line x1="{bx:.1f}" y1="{pad_t}" x2="{bx:.1f}" y2="{pad_t + h}" '
            'stroke="#8ab" stroke-width="1"/>'
        )
    ty = y(result.threshold)
    parts.append(
        f'<line x1="{pad_l}" y1="{ty:.1f}" x2="{pad_l + w}" y2="{ty:.1f}" stroke="#c33" '
        'stroke-dasharray="6 4"/>'
        f'<text x="{pad_l + w - 4}" y="{ty - 4:.1f}" font-size="11" text-anchor="end" '
        f'fill="#c33">threshold {result.threshold:g}</text>'
    )
    probs = [float(p) for p in result.probabilities]
    points = [(x(s.end_time), y(p)) for s, p in zip(result.shots, probs, strict=True)]
    if points:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#246" stroke-width="1.5"/>')
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="#246"/>' for px, py in points]
    for p in (0.0, 0.5, 1.0):
        parts.append(
            f'<text x="{pad_l - 6}" y="{y(p) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{p:g}</text>"
        )
    for i in range(5):
        t = t0 + span * i / 4
        parts.append(
            f'<text x="{x(t):.1f}" y="{height - 10}" font-size="11" text-anchor="middle">'
            f"{t:.1f}s</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render(result: Any) -> str:
    """The whole report as one HTML string (no external resources)."""
    name = html.escape(Path(result.video.path).name)
    info = result.video
    rows = []
    for scene in result.scenes:
        thumbs = ""
        if result.keyframes is not None:
            middle = result.keyframes.shape[1] // 2
            for i in scene.shot_indices[:MAX_THUMBS]:
                thumbs += (
                    f'<img alt="shot {i}" title="shot {i}" '
                    f'src="data:image/jpeg;base64,{_jpeg(result.keyframes[i, middle])}">'
                )
        prob = float(result.probabilities[scene.last_shot])
        rows.append(
            f"<tr><td>{scene.index + 1}</td><td>{format_timecode(scene.start_time)}</td>"
            f"<td>{format_timecode(scene.end_time)}</td><td>{scene.duration:.2f}s</td>"
            f"<td>{scene.first_shot}&ndash;{scene.last_shot}</td><td>{prob:.2f}</td>"
            f'<td class="strip">{thumbs}</td></tr>'
        )
    timings = ", ".join(f"{html.escape(k)} {v:.2f}s" for k, v in result.timings.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Scenes of {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 4px 8px; border-bottom: 1px solid #ddd;
text-align: left; vertical-align: middle; }} .strip img {{ height: {THUMB_HEIGHT}px;
margin-right: 2px; }} .meta {{ color: #555; font-size: 90%; }}
</style></head><body>
<h1>Scenes of {name}</h1>
<p class="meta">{info.width}x{info.height}, {info.fps:g} fps, {info.duration:.2f}s;
{len(result.shots)} shots ({html.escape(result.detector)}), {len(result.scenes)} scenes;
model {html.escape(Path(result.model).name)}; threshold {result.threshold:g}.<br>
Timings: {timings}</p>
<h2>P(shot ends a scene)</h2>
{plot_svg(result)}
<h2>Scenes</h2>
<table><tr><th>#</th><th>start</th><th>end</th><th>length</th><th>shots</th>
<th>P(end)</th><th>shots (middle keyframe)</th></tr>
{"".join(rows)}
</table></body></html>
"""
