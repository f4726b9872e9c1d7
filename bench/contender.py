"""Run one contender of bench_inference's PySceneDetect comparison in this fresh process.

``python bench/contender.py KIND VIDEO`` prints one JSON line: shots (and their start
frames), wall time from process start, startup (process start until work on the
video begins: imports, and for ``sseg segment`` its command-line checks; its models then
load in a thread while the video decodes), processing time, peak RSS. Only the
standard library is imported before timing starts. The ``sseg-*`` pipeline kinds run
the ``sseg segment`` command itself (``sseg.cli.main``: its default threads, precision
and output files).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    ``VmHWM`` from /proc: unlike ``ru_maxrss`` it starts afresh at ``exec``, so a big
    parent (pytest) does not leak its peak into the contender's figure.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(kind: str, path: str) -> dict:
    """Time one contender (see ``CONTENDERS`` in bench_inference.py)."""
    began = time.perf_counter()
    out: dict = {"kind": kind}
    if kind == "pyscenedetect":
        from scenedetect import AdaptiveDetector, detect

        ready = time.perf_counter()
        scenes = detect(path, AdaptiveDetector())
        out["starts"] = [start.get_frames() for start, _ in scenes]
    elif kind.startswith("sseg-detect-"):
        from sseg.pipeline import detect_shots

        ready = time.perf_counter()
        shots, _ = detect_shots(path, detector=kind.rsplit("-", 1)[1], device="auto")
        out["starts"] = [shot.start_frame for shot in shots]
    else:
        import sseg.pipeline
        from sseg.cli import main

        results = []
        segment = sseg.pipeline.segment
        called: list[float] = []

        def recording_segment(*args, **kwargs):
            called.append(time.perf_counter())
            results.append(segment(*args, **kwargs))
            return results[-1]

        sseg.pipeline.segment = recording_segment
        argv = [
            "segment",
            path,
            "-q",
            "--detector",
            "content" if "content" in kind else "transnetv2",
        ]
        if kind.endswith("-fp32"):
            argv += ["--precision", "fp32"]
        with tempfile.TemporaryDirectory() as tmp:
            code = main([*argv, "-o", tmp])
        if code != 0:
            raise SystemExit(f"sseg segment exited {code}")
        result = results[0]
        ready = called[0]  # decoding starts here; the models load alongside (load_models)
        out["starts"] = [shot.start_frame for shot in result.shots]
        out["scenes"] = len(result.scenes)
        out["stages"] = {k: round(v, 3) for k, v in result.timings.items()}
    end = time.perf_counter()
    out["shots"] = len(out["starts"])
    out["wall"] = end - began
    out["startup"] = ready - began
    out["processing"] = end - ready
    out["peak_rss_mb"] = peak_rss_mb()
    return out


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2])))
