"""Run one contender of bench_inference's PySceneDetect comparison in this fresh process.

``python bench/contender.py KIND VIDEO`` prints one JSON line: shots (and their start
frames), wall time from process start, startup (process start until work on the
video begins: imports, and for ``sseg segment`` its command-line checks; its models then
load in a thread while the video decodes), processing time, peak RSS, and the CPU
seconds spent (user + system, all threads) with their split by thread group
(:class:`ThreadCpu`). Only the standard library is imported before timing starts.
The ``sseg-*`` pipeline kinds run the ``sseg segment`` command itself (``sseg.cli.main``:
its default threads, precision and output files).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import threading
import time

# Thread name prefixes -> what the thread does (Python names; FFmpeg names its own).
THREAD_GROUPS = (
    ("sseg-prefetch", "decoding + scaling"),
    ("av:", "decoding + scaling"),
    ("sseg-transnet", "TransNetV2"),
    ("sseg-encode", "CLIP"),
    ("sseg-load", "loading models (imports)"),
    ("MainThread", "main thread"),
)


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


class ThreadCpu:
    """CPU seconds of this process's threads, sampled from /proc/self/task while it runs.

    Python threads are named through :func:`threading.enumerate` (their native names are
    the interpreter's), FFmpeg's by themselves. A thread that ends between two samples
    loses its last interval: :meth:`split` puts what the samples miss under "unsampled",
    from the process total.
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.tick = os.sysconf("SC_CLK_TCK")
        self.seconds: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._began = _process_cpu()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._thread.start()

    def _sample_until_stopped(self) -> None:
        own = threading.get_native_id()
        while not self._stop.wait(self.interval):
            self._sample(own)

    def _sample(self, own: int) -> None:
        for thread in threading.enumerate():
            if thread.native_id is not None:
                self.names[thread.native_id] = thread.name
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as stat:
                    text = stat.read()
            except OSError:
                continue  # ended meanwhile
            if int(tid) == own:
                continue
            comm = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            self.names.setdefault(int(tid), comm)
            self.seconds[int(tid)] = (int(fields[11]) + int(fields[12])) / self.tick

    def split(self) -> dict:
        """Stop; ``{"total": s, "by_group": {group: s}}`` (groups: ``THREAD_GROUPS``)."""
        self._stop.set()
        self._thread.join()
        self._sample(threading.get_native_id())
        total = _process_cpu() - self._began
        groups: dict[str, float] = {}
        for tid, seconds in self.seconds.items():
            name = self.names.get(tid, "")
            group = next((g for prefix, g in THREAD_GROUPS if name.startswith(prefix)), "other")
            groups[group] = groups.get(group, 0.0) + seconds
        groups["unsampled"] = max(total - sum(groups.values()), 0.0)
        return {"total": round(total, 2), "by_group": {k: round(v, 2) for k, v in groups.items()}}


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def run(kind: str, path: str) -> dict:
    """Time one contender (see ``CONTENDERS`` in bench_inference.py)."""
    began = time.perf_counter()
    if kind.startswith("sseg-") and not kind.startswith("sseg-detect-"):
        # `sseg segment` sets this before its threads start; glibc fixes the arena limit
        # when the first thread allocates, which the CPU sampler below would do first.
        from sseg.threads import share_one_malloc_arena  # standard library only

        share_one_malloc_arena()
    cpu = ThreadCpu()
    out: dict = {"kind": kind}
    if kind == "pyscenedetect":
        from scenedetect import AdaptiveDetector, detect

        ready = time.perf_counter()
        scenes = detect(path, AdaptiveDetector())
        out["starts"] = [start.get_frames() for start, _ in scenes]
    elif kind.startswith("sseg-detect-"):
        from sseg.segmentation.pipeline import detect_shots

        ready = time.perf_counter()
        shots, _ = detect_shots(path, detector=kind.rsplit("-", 1)[1], device="auto")
        out["starts"] = [shot.start_frame for shot in shots]
    else:
        import sseg.segmentation.pipeline
        from sseg.cli import main

        results = []
        segment = sseg.segmentation.pipeline.segment
        called: list[float] = []

        def recording_segment(*args, **kwargs):
            called.append(time.perf_counter())
            results.append(segment(*args, **kwargs))
            return results[-1]

        sseg.segmentation.pipeline.segment = recording_segment
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
    out["cpu"] = cpu.split()
    return out


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2])))
