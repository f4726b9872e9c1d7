"""CPU thread count for torch: ``--threads N`` or the measured default for this machine;
and one malloc arena for the threads of ``sseg segment`` (:func:`share_one_malloc_arena`).

On a machine with few cores shared with other jobs, torch's default (one OpenMP thread
per core) makes small models *slower*: threads spin-wait for cores that other processes
hold. ``bench/bench_threads.py`` measures it (``bench/results/cpu-threads.md``): a
fine-tuning step of the proxy-size context model on 2 cores ran faster with 1 thread.
The default therefore leaves one core free for every two: 1 thread up to 3 cores, then
half the cores (at most 8, where small models stop scaling).
"""

from __future__ import annotations

import contextlib
import os
import sys

MAX_DEFAULT_THREADS = 8


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_threads(cores: int | None = None) -> int:
    """Threads for ``--threads auto`` on a machine with ``cores`` usable cores."""
    cores = usable_cores() if cores is None else cores
    return max(1, min(MAX_DEFAULT_THREADS, cores // 2))


def parse_threads(text: str) -> int:
    """``"auto"`` -> :func:`default_threads`; else a positive integer."""
    import argparse

    if text == "auto":
        return default_threads()
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"threads must be at least 1, got {value}")
    return value


def apply_threads(threads: int) -> None:
    """Set torch's intra-op threads (inter-op too while it can still be set).

    Before torch is imported this only exports ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``,
    which torch reads when it loads: importing torch (about 2 s) is left to whoever needs
    it, e.g. a model-loading thread while ``sseg segment`` already decodes.
    """
    if "torch" not in sys.modules:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)
        return
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set, or parallel work has started
        torch.set_num_interop_threads(threads)


M_ARENA_MAX = -8  # glibc's mallopt parameter


def share_one_malloc_arena() -> bool:
    """Make glibc's malloc serve every thread from one arena; True if it did.

    glibc gives each thread that allocates its own arena and keeps freed memory in it:
    ``sseg segment`` runs a decoder, two TransNetV2 passes and CLIP in threads, each
    freeing large activations that another arena cannot reuse. On the 61 s 720p bench
    clip one arena kept the command's peak RSS at 845-896 MB against 989-1040 MB (3 runs
    each, interleaved), at no measurable cost in speed (the allocations are few and large).
    Call it before the threads start. Skipped where ``MALLOC_ARENA_MAX`` is set (the
    user's choice) and off glibc.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    return bool(mallopt(M_ARENA_MAX, 1))
