"""JSON: video info, shots with boundary probabilities, scenes with their shots, timings."""

from __future__ import annotations

import json
from typing import Any

from ..segmentation.timecode import format_timecode

SUFFIX = ".scenes.json"


def to_dict(result: Any) -> dict:
    """A JSON-able dict of a :class:`~sseg.segmentation.pipeline.SegmentationResult`."""
    probs = [float(p) for p in result.probabilities]
    ends = {scene.last_shot for scene in result.scenes}
    return {
        "video": result.video.to_dict(),
        "detector": result.detector,
        "model": result.model,
        "threshold": result.threshold,
        "skipped_frames": result.skipped_frames,
        "num_shots": len(result.shots),
        "num_scenes": len(result.scenes),
        "scenes": [
            {
                "index": scene.index,
                "start_frame": scene.start_frame,
                "end_frame": scene.end_frame,
                "start_time": round(scene.start_time, 6),
                "end_time": round(scene.end_time, 6),
                "start_timecode": format_timecode(scene.start_time),
                "end_timecode": format_timecode(scene.end_time),
                "shots": scene.shot_indices,
                "boundary_probability": round(probs[scene.last_shot], 6),
            }
            for scene in result.scenes
        ],
        "shots": [
            {
                "index": i,
                "start_frame": shot.start_frame,
                "end_frame": shot.end_frame,
                "start_time": round(shot.start_time, 6),
                "end_time": round(shot.end_time, 6),
                "boundary_probability": round(probs[i], 6),
                "ends_scene": i in ends,
            }
            for i, shot in enumerate(result.shots)
        ],
        "intra_shot_boundaries": [
            {
                "shot": b.shot_index,
                "time": round(b.time, 6),
                "frame": b.frame,
                "probability": round(b.probability, 6),
            }
            for b in result.intra_shot_boundaries
        ],
        "timings_seconds": {k: round(v, 4) for k, v in result.timings.items()},
    }


def render(result: Any) -> str:
    """Indented JSON text."""
    return json.dumps(to_dict(result), indent=2) + "\n"
