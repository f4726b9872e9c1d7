"""``sseg ablate``: the paper's ablation table, or one model over split thresholds.

* ``sseg ablate --proxy --out DIR`` (or ``--features STORE --split SPLIT --out DIR``):
  pre-train, fine-tune and score every row of the table over several seeds
  (:mod:`sseg.benchmarks.ablation`); writes DIR/ablation.json and DIR/ablation.md.
* ``sseg ablate --model M --features STORE``: one model at several test-time split
  thresholds tau (none, 60, 30, 10 s).
"""

from __future__ import annotations

import argparse
import json

NAME = "ablate"
HELP = (
    "The paper's ablation table (pre-train, fine-tune, score each row over seeds), or one "
    "model over test-time split thresholds (--model)."
)


def _taus(text: str) -> list[float | None]:
    out: list[float | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        if item in ("none", "off"):
            out.append(None)
            continue
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"tau must be 'none' or seconds, got {item!r}"
            ) from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"tau must be positive, got {value}")
        out.append(value)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sseg ablate``."""
    from .evaluate import add_source_arguments

    parser.add_argument(
        "--model", help="one SceneModel checkpoint: score it over --taus instead of the table"
    )
    add_source_arguments(parser)
    parser.add_argument(
        "--taus",
        type=_taus,
        default=[None, 60.0, 30.0, 10.0],
        help="with --model: comma list, e.g. none,60,30,10",
    )
    table = parser.add_argument_group("ablation table (without --model)")
    table.add_argument("--out", help="output folder: runs, ablation.json, ablation.md")
    table.add_argument(
        "--proxy", action="store_true", help="generate (or reuse) the proxy benchmark in --out"
    )
    table.add_argument("--proxy-scale", type=float, default=1.0, help="proxy corpus size factor")
    table.add_argument(
        "--seeds",
        default="3",
        help="a count (3 = seeds 0,1,2) or a comma list (one given seed: '2,')",
    )
    table.add_argument("--rows", help="comma list of rows (default: all; see docs)")
    table.add_argument("--genre-bank", help="definition genre bank .npy (default: the store's)")
    table.add_argument("--genre-bank-names", help="names-only genre bank .npy (names_only row)")
    table.add_argument("--pretrain-steps", type=int, default=None)
    table.add_argument("--finetune-steps", type=int, default=None)
    table.add_argument("--hidden", type=int, default=None, help="context encoder width")
    table.add_argument(
        "--jobs", type=int, default=1, help="training processes, one thread each (default 1)"
    )


def _name(tau: float | None) -> str:
    return "none" if tau is None else f"{tau:g}"


def run(args: argparse.Namespace) -> int:
    """The ablation table, or (with --model) one evaluation per tau."""
    if args.model is None:
        return run_table(args)
    return run_taus(args)


def _table_inputs(args: argparse.Namespace):
    """(AblationData, default test split) from --proxy or --features/--split."""
    from pathlib import Path

    from ..benchmarks.ablation import AblationData
    from ..errors import InputError
    from ..store.features import FeatureStore

    if args.proxy:
        if args.features:
            raise InputError("--proxy and --features exclude each other")
        from ..benchmarks.proxy import write_proxy_benchmark

        proxy = write_proxy_benchmark(Path(args.out) / "proxy", scale=args.proxy_scale)
        banks = {"definition": proxy.genre_bank, "name": proxy.genre_bank_names}
        return AblationData(proxy.store, proxy.split, banks)
    if not args.features or not args.split:
        raise InputError("the ablation table needs --proxy, or --features STORE --split SPLIT")
    store = FeatureStore(args.features)
    banks = {}
    definition = args.genre_bank or (
        store.root / store.meta["genre_bank"] if store.meta.get("genre_bank") else None
    )
    if definition is None:
        raise InputError("no genre bank: pass --genre-bank (the store records none)", store.root)
    banks["definition"] = Path(definition)
    if args.genre_bank_names:
        banks["name"] = Path(args.genre_bank_names)
    return AblationData(store.root, Path(args.split), banks)


def run_table(args: argparse.Namespace) -> int:
    """Every requested row over the seeds; prints the Markdown table."""
    from ..benchmarks.ablation import (
        BASELINES,
        ROWS,
        Ablation,
        AblationSettings,
        parse_seeds,
    )
    from ..benchmarks.ablation import run_table as build_table
    from ..errors import InputError

    if not args.out:
        raise InputError("the ablation table needs --out DIR (or pass --model for a tau sweep)")
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError:
        raise InputError(f"--seeds must be a count or a comma list, got {args.seeds!r}") from None
    rows = list(ROWS) if not args.rows else [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS and r not in BASELINES]
    if unknown:
        raise InputError(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    data = _table_inputs(args)
    if "name" not in data.banks and "names_only" in rows:
        if args.rows:
            raise InputError("row names_only needs --genre-bank-names")
        rows.remove("names_only")
    settings = AblationSettings(device=args.device)
    for name in ("pretrain_steps", "finetune_steps", "hidden"):
        if getattr(args, name) is not None:
            if getattr(args, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1")
            setattr(settings, name, getattr(args, name))
    if args.jobs < 1:
        raise InputError("--jobs must be at least 1")
    report = build_table(Ablation(data, args.out, settings), rows, seeds, args.jobs)
    from ..benchmarks.ablation import format_markdown

    print(format_markdown(report))
    return 0


def run_taus(args: argparse.Namespace) -> int:
    """One evaluation per tau; prints a table and optionally writes JSON."""
    from ..atomic import atomic_write_text
    from ..data.annotations import load_labels, select_videos
    from ..errors import InputError
    from ..evaluation.scoring import format_table, predict_store, score
    from ..modeling.model import SceneModel
    from ..store.features import FeatureStore
    from .evaluate import check_common

    check_common(args)
    if args.features is None:
        raise InputError("--features (a feature store) is required")
    store = FeatureStore(args.features)
    model = SceneModel.load(args.model, args.device)
    videos = select_videos(store, args.split, args.subset)
    labels = load_labels(args.labels, store, videos)
    videos = [v for v in videos if v in labels]
    rows, results = [], []
    for tau in args.taus:
        probs, split = predict_store(model, store, videos, tau, args.split_n, args.device)
        result = score(probs, labels, store, args.threshold)
        result.pop("per_video")
        result.update(tau=tau, split_n=args.split_n, shots_split=sum(split.values()))
        results.append(result)
        rows.append((_name(tau), result))
    print(format_table(rows, first="tau (s)"))
    if args.json_out:
        report = {"model": args.model, "threshold": args.threshold, "results": results}
        atomic_write_text(args.json_out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0
