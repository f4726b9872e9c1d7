"""Run one contender of bench_inference's PySceneDetect comparison in this fresh process.

``python bench/contender.py KIND VIDEO`` prints one JSON line: shots, wall time from
process start, startup (imports + model loading), processing time, peak RSS. Only the
standard library is imported before timing starts.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def run(kind: str, path: str) -> dict:
    """Time one contender (see ``CONTENDERS`` in bench_inference.py)."""
    began = time.perf_counter()
    out: dict = {"kind": kind}
    if kind == "pyscenedetect":
        from scenedetect import AdaptiveDetector, detect

        ready = time.perf_counter()
        out["shots"] = len(detect(path, AdaptiveDetector()))
    elif kind.startswith("sseg-detect-"):
        from sseg.pipeline import detect_shots

        ready = time.perf_counter()
        shots, _ = detect_shots(path, detector=kind.rsplit("-", 1)[1], device="auto")
        out["shots"] = len(shots)
    else:
        import sseg

        called = time.perf_counter()
        result = sseg.segment(path, detector="content" if kind == "sseg-content" else "transnetv2")
        ready = called + result.timings["load_models"]
        out["shots"], out["scenes"] = len(result.shots), len(result.scenes)
        out["stages"] = {k: round(v, 3) for k, v in result.timings.items()}
    end = time.perf_counter()
    out["wall"] = end - began
    out["startup"] = ready - began
    out["processing"] = end - ready
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2])))
