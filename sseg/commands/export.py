"""``sseg export``: a scene model as a torch.export program or an AOTInductor package."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "Export a scene model for deployment (torch.export program or AOTInductor package)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sseg export``."""
    parser.add_argument("--model", required=True, help="SceneModel checkpoint (.safetensors)")
    parser.add_argument("--out", required=True, help="output file (.pt2)")
    parser.add_argument(
        "--aoti",
        action="store_true",
        help="compile ahead of time with AOTInductor (needs a C++ compiler; minutes on CPU)",
    )
    parser.add_argument("--device", default="cpu", help="device to export for (cpu, cuda)")
    parser.add_argument("--keyframes", type=int, default=3, help="keyframes per shot (K)")
    parser.add_argument(
        "--max-batch", type=int, default=4096, help="largest window batch of one call"
    )
    parser.add_argument(
        "--ag-backend",
        choices=("auto", "reference", "triton"),
        default="auto",
        help="AG-Residual inside the program: auto = Triton custom op on CUDA, ATen on CPU",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the comparison with SceneModel.predict"
    )


def _check(args: argparse.Namespace) -> None:
    from pathlib import Path

    import torch

    from ..errors import InputError

    if args.keyframes < 1:
        raise InputError(f"--keyframes must be at least 1, got {args.keyframes}")
    if args.max_batch < 2:
        raise InputError(f"--max-batch must be at least 2, got {args.max_batch}")
    if not str(args.out).endswith(".pt2"):
        raise InputError("output must end in .pt2", args.out)
    if Path(args.out).is_dir():
        raise InputError("output is a folder", args.out)
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise InputError(f"--device {args.device!r} is not a device ({exc})") from exc
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device must be cpu or cuda, got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device here")


def verify(model, path, keyframes: int, device: str) -> float:
    """Max |exported - SceneModel.predict| over a random video of 3 windows' worth of shots."""
    import torch

    from ..deploy.batch import predict_many
    from ..deploy.export import load_scorer

    scorer = load_scorer(path, device)
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(3 * scorer.window, keyframes, scorer.dim, generator=generator)
    expected = model.predict(video.to(device))
    got = predict_many(scorer, [video], batch_size=scorer.window)[0]
    return float((got - expected).abs().max())


def run(args: argparse.Namespace) -> int:
    """Load, export, verify; print what was written."""
    import time

    from ..deploy.export import export_to_file
    from ..errors import InputError, SsegError
    from ..modeling.model import SceneModel

    _check(args)
    model = SceneModel.load(args.model, device=args.device)
    began = time.perf_counter()
    try:
        meta = export_to_file(
            model, args.out, "aoti" if args.aoti else "program", args.keyframes,
            args.max_batch, args.ag_backend,
        )  # fmt: skip
    except OSError as exc:
        raise InputError(f"cannot write ({exc.strerror or exc})", args.out) from exc
    seconds = time.perf_counter() - began
    print(
        f"wrote {args.out}: {meta['kind']} for {meta['device']}, windows of {meta['window']} "
        f"shots x {meta['keyframes']} keyframes x {meta['dim']}, batch 1..{meta['max_batch']} "
        f"({seconds:.1f} s)"
    )
    if not args.no_verify:
        error = verify(model, args.out, args.keyframes, args.device)
        print(f"max |exported - SceneModel.predict| = {error:.2e}")
        if error > 1e-4:
            raise SsegError(f"{args.out}: exported model disagrees with the checkpoint ({error})")
    return 0
