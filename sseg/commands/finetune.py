"""``sseg finetune``: train the boundary model on labelled cached features."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "finetune"
HELP = "Fine-tune a scene model (context encoder + head) with BCE on labelled features."


def genre_fusion_name(text: str) -> str:
    """Validate a ``--genre-fusion`` value (imports the model code only when used)."""
    from ..modeling.genre_fusion import FUSIONS

    if text not in FUSIONS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(FUSIONS)}, got {text!r}")
    return text


def _pos_weight(text: str) -> float | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected 'auto', 'none' or a positive number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("pos-weight must be positive")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sseg finetune``."""
    parser.add_argument("--features", required=True, help="feature store folder")
    parser.add_argument("--out", required=True, help="output folder (model + train state)")
    parser.add_argument(
        "--labels", help="MovieNet root (label318/) or JSON-lines shots; default: store labels"
    )
    parser.add_argument("--split", help="split318.json (or its folder) selecting the videos")
    parser.add_argument("--subset", default="train", help="subset of --split (default train)")
    parser.add_argument(
        "--init",
        help="pre-trained SceneModel: its shot-level part (genre bank + trained genre weights) "
        "is kept frozen; the context encoder and head start fresh, as in the paper",
    )
    parser.add_argument(
        "--init-context",
        action="store_true",
        help="with --init: also start from its pre-trained context encoder (BaSSL style; "
        "the head still starts fresh)",
    )
    parser.add_argument(
        "--genre-bank",
        help="(G, D) genre bank (.npy or safetensors) for a new model; default: the store's",
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pos-weight",
        type=_pos_weight,
        default=None,
        help="BCE weight of boundaries: a number, 'auto' (negatives/positives) or 'none' (default)",
    )
    parser.add_argument(
        "--train-genre", action="store_true", help="also train the AG-Residual layer"
    )
    parser.add_argument("--resume", action="store_true", help="continue from --out's train state")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--device", default="cpu")
    fresh = parser.add_argument_group(
        "fresh context encoder (default: --init's sizes, else 768 hidden, 2 layers, 8 heads, "
        "17-shot windows)"
    )
    fresh.add_argument("--hidden", type=int)
    fresh.add_argument("--layers", type=int)
    fresh.add_argument("--heads", type=int)
    fresh.add_argument("--window", type=int)
    fresh.add_argument(
        "--genre-fusion",
        type=genre_fusion_name,
        help="how genre enters a new model without --init: ag_residual (default), none, "
        "frame_concat or token_concat (docs/genre_prior.md)",
    )


def _genre_bank(path: str | Path):
    """(G, D) genre embeddings from ``.npy`` or a safetensors file (or SceneModel checkpoint)."""
    import numpy as np
    import torch

    from .. import checkpoint
    from ..errors import InputError

    path = Path(path)
    if path.suffix == ".npy":
        try:
            bank = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable genre bank ({exc})", path) from exc
        if bank.ndim != 2:
            raise InputError(f"genre bank must be (G, D), got shape {bank.shape}", path)
        return torch.from_numpy(np.asarray(bank, dtype=np.float32))
    tensors, _ = checkpoint.load_checkpoint(path)
    for key in ("genres", "genre_residual.genres"):
        if key in tensors:
            return tensors[key].float()
    if len(tensors) == 1:
        return next(iter(tensors.values())).float()
    raise InputError("no 'genres' tensor in genre bank file", path)


def _context_config(args: argparse.Namespace, base) -> object:
    """``base`` (a ContextConfig) with the sizes given on the command line."""
    from ..modeling.context import ContextConfig

    sizes = {k: getattr(args, k) for k in ("hidden", "layers", "heads", "window")}
    return ContextConfig(**{**base.to_dict(), **{k: v for k, v in sizes.items() if v}})


def build_model(args: argparse.Namespace, store=None):
    """The model to fine-tune, initialised from ``--seed`` alone (so runs repeat exactly).

    With ``--init``: the pre-trained shot-level part, a fresh context encoder and head
    (``--init-context`` keeps the pre-trained encoder); without: a new model on
    ``--genre-bank`` (or the store's bank).
    """

    from ..errors import InputError
    from ..modeling.context import ContextConfig
    from ..modeling.model import SceneModel, seeded_init

    if args.init_context and not args.init:
        raise InputError("--init-context needs --init (a pre-trained model)")
    if args.init:
        pretrained = SceneModel.load(args.init)
        if args.genre_fusion and args.genre_fusion != pretrained.genre_fusion:
            raise InputError(
                f"--genre-fusion {args.genre_fusion} differs from the model's "
                f"{pretrained.genre_fusion}",
                args.init,
            )
        if args.init_context:
            if any(getattr(args, k) for k in ("hidden", "layers", "heads", "window")):
                raise InputError("--init-context keeps the pre-trained sizes; drop --hidden etc.")
            return pretrained.fresh_head(args.seed)
        return pretrained.fresh_context(
            _context_config(args, pretrained.boundary.config), args.seed
        )
    bank = args.genre_bank
    if not bank and store is not None and store.meta.get("genre_bank"):
        bank = store.root / store.meta["genre_bank"]
    if not bank:
        raise InputError(
            "a new model needs a genre bank: pass --init CHECKPOINT or --genre-bank FILE"
        )
    genres = _genre_bank(bank)
    cfg = _context_config(args, ContextConfig(input_dim=genres.shape[1]))
    with seeded_init(args.seed):
        return SceneModel(genres, cfg, genre_fusion=args.genre_fusion or "ag_residual")


def run(args: argparse.Namespace) -> int:
    """Fine-tune and write ``--out/model.safetensors``."""
    from ..data.annotations import load_labels, select_videos
    from ..errors import InputError
    from ..store.features import FeatureStore, backbone_info, check_same_backbone
    from ..training.finetune import MODEL_FILE, FinetuneConfig, LabelledShots, finetune
    from ..training.loop import TrainConfig, init_distributed

    if args.steps < 1 or args.batch_size < 1:
        raise InputError("--steps and --batch-size must be at least 1")
    store = FeatureStore(args.features)
    videos = select_videos(store, args.split, args.subset)
    labels = load_labels(args.labels, store, videos)
    data = LabelledShots.from_store(store, labels, videos)
    model = build_model(args, store)
    check_same_backbone(model.meta, store)
    model.meta = {**model.meta, **backbone_info(store)}
    if store.dim is not None and store.dim != model.boundary.config.input_dim:
        problem = (
            f"store features are {store.dim}-d, the model takes {model.boundary.config.input_dim}"
        )
        raise InputError(problem, args.features)
    train = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        warmup_steps=args.warmup,
        weight_decay=args.weight_decay,
        seed=args.seed,
        batch_size=args.batch_size,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
    )
    options = FinetuneConfig(pos_weight=args.pos_weight, train_genre=args.train_genre)
    print(
        f"fine-tuning on {len(data.keyframes)} videos, {len(data.positions)} labelled shots, "
        f"{args.steps} steps"
    )
    info = init_distributed(args.device)  # one process unless launched by torchrun
    device = args.device
    if info.enabled and str(device).startswith("cuda"):
        device = f"cuda:{info.local_rank}"
    _, history = finetune(model, data, train, options, args.out, args.resume, device, info)
    tail = history[-min(len(history), 50) :]
    if tail:
        print(f"final loss (mean of last {len(tail)} steps): {sum(tail) / len(tail):.4f}")
    print(f"model written to {args.out}/{MODEL_FILE}")
    return 0
