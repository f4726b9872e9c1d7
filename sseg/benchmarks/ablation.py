"""The paper's ablation table on any labelled feature store (``sseg ablate``).

Each *row* is one setting of the method; rows that share a training (``full``, ``idw`` and
the ``split_*`` rows) share its runs. For every training and seed: pre-train on the
store's non-test videos (labels never read), fine-tune on the ``train`` subset, score the
``test`` subset. Everything one run writes sits in ``out/runs/<training>/seed<s>/``; a run
whose metrics file exists is not repeated, so an interrupted table resumes.

Fine-tuning follows the paper: the shot-level part (genre bank + pre-trained genre
weights) is frozen and the context encoder and head start fresh, so pre-training reaches
the final model only through the genre weights. ``full_init_context`` is the BaSSL-style
setting in which fine-tuning also starts from the pre-trained context encoder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TEST, TRAIN = "test", "train"

# Paper's MovieNet-SSeg numbers (AP; F1 and mIoU where the paper gives them).
PAPER: dict[str, dict[str, float]] = {
    "full": {"AP": 63.62, "F1": 58.88, "mIoU": 59.64},
    "no_genre": {"AP": 61.27},
    "frame_concat": {"AP": 59.13},
    "token_concat": {"AP": 62.43},
    "names_only": {"AP": 63.23},
    "side": {"AP": 62.82},
    "dw": {"AP": 63.44},
    "idw": {"AP": 63.62},
    "split_none": {"AP": 63.62},
    "split_60": {"AP": 63.63},
    "split_30": {"AP": 63.76},
    "split_10": {"AP": 63.80},
}


@dataclass(frozen=True)
class Training:
    """What one training run does (rows sharing these share the runs)."""

    pretrain: bool = True
    fusion: str = "ag_residual"
    bank: str = "definition"  # definition | name
    sampling: str = "idw"
    init_context: bool = False

    @property
    def pretrain_key(self) -> str:
        """Folder name of its pre-training (shared by trainings that differ only after it)."""
        if not self.pretrain:
            return f"nopretrain-{self.fusion}-{self.bank}"
        return f"pre-{self.fusion}-{self.bank}-{self.sampling}"

    @property
    def key(self) -> str:
        """Folder name of its runs."""
        return self.pretrain_key + ("-ctx" if self.init_context else "")


@dataclass(frozen=True)
class Row:
    """One line of the table: a training and the test-time split threshold."""

    name: str
    training: Training
    tau: float | None = None
    note: str = ""


FULL = Training()
ROWS: dict[str, Row] = {
    row.name: row
    for row in (
        Row("full", FULL),
        Row("no_pretrain", Training(pretrain=False), note="W stays zero: no genre either"),
        Row("no_genre", Training(fusion="none")),
        Row("frame_concat", Training(fusion="frame_concat")),
        Row("token_concat", Training(fusion="token_concat")),
        Row("names_only", Training(bank="name")),
        Row("side", Training(sampling="side")),
        Row("dw", Training(sampling="dw")),
        Row("idw", FULL, note="same runs as full"),
        Row("split_none", FULL, None, "same runs as full"),
        Row("split_60", FULL, 60.0, "full, test-time split > 60 s"),
        Row("split_30", FULL, 30.0, "full, test-time split > 30 s"),
        Row("split_10", FULL, 10.0, "full, test-time split > 10 s"),
        Row("full_init_context", Training(init_context=True), note="BaSSL-style fine-tuning"),
    )
}
BASELINES = ("baseline_neighbour_cosine", "baseline_context_rule", "baseline_random")
BASELINE_NOTES = {
    "baseline_neighbour_cosine": "untrained: 1 - cos(shot i, shot i+1)",
    "baseline_context_rule": "untrained: 1 - cos(mean of 4 shots before, 4 after)",
    "baseline_random": "uniform scores",
}


@dataclass
class AblationSettings:
    """Model size and training budget shared by every row (defaults: proxy size, 2 CPUs)."""

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    window: int = 17
    dropout: float = 0.1
    anchors: int = 3
    dtw_mode: str = "sum"
    pretrain_steps: int = 300
    pretrain_lr: float = 1e-3
    finetune_steps: int = 300
    finetune_lr: float = 1e-3
    batch_size: int = 64
    pos_weight: str | None = None
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AblationData:
    """Where the store, split and genre banks are."""

    store: Path
    split: Path | None
    banks: dict[str, Path]  # "definition" / "name" -> (G, D) .npy


def _timestamped(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _metrics_subset(result: dict) -> dict[str, float]:
    return {k: float(result[k]) for k in ("AP", "F1", "mIoU", "Recall", "Recall@3s")}


def _write_json(path: Path, data: Any) -> None:
    from ..atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


class Ablation:
    """Runs trainings on demand and caches their test metrics per split threshold."""

    def __init__(
        self,
        data: AblationData,
        out_dir: str | Path,
        settings: AblationSettings,
        log: Callable[[str], None] | None = None,
    ):
        from ..data.annotations import load_labels, select_videos
        from ..store.features import FeatureStore

        self.data, self.settings = data, settings
        self.log = log or _timestamped
        self.out = Path(out_dir)
        self.store = FeatureStore(data.store)
        split = None if data.split is None else str(data.split)
        self.test_ids = select_videos(self.store, split, TEST) if split else []
        self.train_ids = select_videos(self.store, split, TRAIN) if split else []
        if not self.test_ids or not self.train_ids:
            from ..errors import InputError

            raise InputError("the split needs non-empty 'train' and 'test' subsets", split)
        test = set(self.test_ids)
        self.pretrain_ids = [v for v in self.store.video_ids if v not in test]
        self.labels = load_labels(None, self.store, self.train_ids + self.test_ids)

    # ------------------------------------------------------------------ one run
    def run_dir(self, training: Training, seed: int) -> Path:
        """Folder of one training run."""
        return self.out / "runs" / training.key / f"seed{seed}"

    def metrics(self, training: Training, seed: int, tau: float | None) -> dict[str, float]:
        """Test metrics of one run at one split threshold (trains the run if needed)."""
        run = self.run_dir(training, seed)
        path = run / f"metrics_tau-{'none' if tau is None else f'{tau:g}'}.json"
        if path.is_file():
            return json.loads(path.read_text())
        model = self._model(training, seed)
        from ..evaluation.scoring import predict_store, score

        probs, _ = predict_store(model, self.store, self.test_ids, tau, 3, self.settings.device)
        result = _metrics_subset(
            score(probs, {v: self.labels[v] for v in self.test_ids}, self.store)
        )
        _write_json(path, result)
        return result

    def _model(self, training: Training, seed: int):
        from ..modeling.model import SceneModel

        path = self.run_dir(training, seed) / "finetune" / "model.safetensors"
        if path.is_file():
            return SceneModel.load(path, self.settings.device)
        return self._finetune(training, seed, path.parent)

    def _context_config(self):
        from ..modeling.context import ContextConfig

        s = self.settings
        return ContextConfig(input_dim=self.store.dim, hidden=s.hidden, heads=s.heads,
                             layers=s.layers, window=s.window, dropout=s.dropout)  # fmt: skip

    def _pretrained(self, training: Training, seed: int):
        from ..modeling.model import SceneModel
        from ..training.pretrain import MODEL_FILE, run_pretraining
        from ..training.pretrain_config import PretrainConfig

        s = self.settings
        out = self.out / "runs" / training.pretrain_key / f"seed{seed}" / "pretrain"
        if not (out / MODEL_FILE).is_file():
            self.log(f"pre-train {training.key} seed {seed} ({s.pretrain_steps} steps)")
            cfg = PretrainConfig(
                store=str(self.data.store), out_dir=str(out), window=s.window,
                anchors=s.anchors, sampling=training.sampling, dtw_mode=s.dtw_mode,
                hidden=s.hidden, heads=s.heads, layers=s.layers, dropout=s.dropout,
                genre_fusion=training.fusion, genre_bank=str(self.data.banks[training.bank]),
                lr=s.pretrain_lr, batch_size=s.batch_size, steps=s.pretrain_steps,
                warmup_steps=max(1, s.pretrain_steps // 10), seed=seed, checkpoint_every=0,
                device=s.device,
            )  # fmt: skip
            resume = (out / "train_state.safetensors").is_file()
            run_pretraining(cfg, resume=resume, progress=False, video_ids=self.pretrain_ids)
        return SceneModel.load(out / MODEL_FILE)

    def _finetune(self, training: Training, seed: int, out: Path):

        from ..modeling.model import SceneModel, seeded_init
        from ..training.finetune import FinetuneConfig, LabelledShots, finetune
        from ..training.loop import TrainConfig
        from ..training.pretrain import load_genre_bank

        s = self.settings
        if training.pretrain:
            model = self._pretrained(training, seed)
            if training.init_context:
                model.fresh_head(seed)
            else:
                model = model.fresh_context(seed=seed)
        else:
            bank, _ = load_genre_bank(self.data.banks[training.bank], self.store)
            with seeded_init(seed):
                model = SceneModel(bank, self._context_config(), genre_fusion=training.fusion)
        self.log(f"fine-tune {training.key} seed {seed} ({s.finetune_steps} steps)")
        data = LabelledShots.from_store(self.store, self.labels, self.train_ids)
        cfg = TrainConfig(
            steps=s.finetune_steps, lr=s.finetune_lr, warmup_steps=max(1, s.finetune_steps // 10),
            seed=seed, batch_size=s.batch_size, checkpoint_every=0, progress=False,
        )  # fmt: skip
        resume = (out / "train_state.safetensors").is_file()
        options = FinetuneConfig(pos_weight=s.pos_weight)
        model, _ = finetune(model, data, cfg, options, out, resume, s.device)
        return model

    # ------------------------------------------------------------------ baselines
    def baseline(self, name: str, seed: int) -> dict[str, float]:
        """Metrics of a baseline on the test videos (``seed`` only matters for random)."""
        from ..evaluation.scoring import score
        from .proxy_stats import context_rule_scores, neighbour_cosine_scores

        probs = {}
        rng = np.random.default_rng(seed)
        for vid in self.test_ids:
            keyframes = np.asarray(self.store.load(vid).keyframes, dtype=np.float32)
            if name == "baseline_random":
                probs[vid] = rng.random(len(keyframes))
            elif name == "baseline_context_rule":
                probs[vid] = np.clip(context_rule_scores(keyframes), 0.0, 1.0)
            else:
                probs[vid] = np.clip(neighbour_cosine_scores(keyframes), 0.0, 1.0)
        return _metrics_subset(score(probs, {v: self.labels[v] for v in self.test_ids}, self.store))


def _summary(name: str, per_seed: list[dict], seeds: Sequence[int], note: str = "") -> dict:
    row: dict[str, Any] = {"name": name, "note": note, "seeds": []}
    for seed, result in zip(seeds, per_seed, strict=True):
        row["seeds"].append({"seed": seed, **result})
    for metric, key in (("AP", "ap"), ("F1", "f1"), ("mIoU", "miou")):
        values = np.array([r[metric] for r in per_seed]) * 100
        row[f"{key}_mean"] = float(values.mean())
        row[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    paper = PAPER.get(name, {})
    row["paper"] = paper
    return row


def _run_group(
    data: AblationData,
    out_dir: Path,
    settings: AblationSettings,
    runs: list[tuple[Training, float | None]],
    seed: int,
) -> None:
    """Worker: every (training, tau) of one pre-training group for one seed, one thread."""
    from ..threads import apply_threads

    apply_threads(1)
    ablation = Ablation(data, out_dir, settings)
    for training, tau in runs:
        ablation.metrics(training, seed, tau)


def run_parallel(ablation: Ablation, rows: Sequence[str], seeds: Sequence[int], jobs: int) -> None:
    """Train and score every row's runs in ``jobs`` processes (one thread each). Runs that
    share a pre-training stay in one process, so no two processes write one folder."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    groups: dict[str, list[tuple[Training, float | None]]] = {}
    for name in rows:
        if name in ROWS:
            row = ROWS[name]
            wanted = groups.setdefault(row.training.pretrain_key, [])
            if (row.training, row.tau) not in wanted:
                wanted.append((row.training, row.tau))
    # seed-major: a table cut short still has whole seeds
    tasks = [(runs, seed) for seed in seeds for runs in groups.values()]
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(_run_group, ablation.data, ablation.out, ablation.settings, runs, seed)
            for runs, seed in tasks
        ]
        for future in futures:
            future.result()


def run_table(
    ablation: Ablation, rows: Sequence[str], seeds: Sequence[int], jobs: int = 1
) -> dict[str, Any]:
    """Every requested row (and the baselines) over ``seeds``; writes ablation.json/.md.

    ``jobs`` > 1 trains the runs in that many processes first."""
    if jobs > 1:
        run_parallel(ablation, rows, seeds, jobs)
    out_rows = []
    for name in rows:
        if name in BASELINES:
            continue
        row = ROWS[name]
        per_seed = [ablation.metrics(row.training, seed, row.tau) for seed in seeds]
        out_rows.append(_summary(name, per_seed, seeds, row.note))
    for name in BASELINES:
        per_seed = [ablation.baseline(name, seed) for seed in seeds]
        out_rows.append(_summary(name, per_seed, seeds, BASELINE_NOTES[name]))
    report = {
        "store": str(ablation.data.store),
        "split": None if ablation.data.split is None else str(ablation.data.split),
        "videos": {"pretrain": len(ablation.pretrain_ids), "train": len(ablation.train_ids),
                   "test": len(ablation.test_ids)},
        "settings": asdict(ablation.settings),
        "seeds": list(seeds),
        "rows": out_rows,
    }  # fmt: skip
    _write_json(ablation.out / "ablation.json", report)
    from ..atomic import atomic_write_text

    atomic_write_text(ablation.out / "ablation.md", format_markdown(report))
    return report


def _cell(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def format_markdown(report: dict[str, Any]) -> str:
    """The table as Markdown (mean ± sample std over seeds, percent)."""
    seeds = report["seeds"]
    lines = [
        "# Ablation table",
        "",
        f"Store `{report['store']}`, split `{report['split']}`; videos: "
        f"{report['videos']['pretrain']} pre-training (non-test, unlabelled use), "
        f"{report['videos']['train']} fine-tuning, {report['videos']['test']} test. "
        f"Seeds {', '.join(map(str, seeds))}: mean ± sample std, percent.",
        "",
        "| row | AP | F1 | mIoU | paper AP | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in report["rows"]:
        paper = row["paper"].get("AP")
        lines.append(
            f"| {row['name']} | {_cell(row['ap_mean'], row['ap_std'])} | "
            f"{_cell(row['f1_mean'], row['f1_std'])} | {_cell(row['miou_mean'], row['miou_std'])} "
            f"| {'-' if paper is None else f'{paper:.2f}'} | {row['note']} |"
        )
    settings = report["settings"]
    lines += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "extra")]
    return "\n".join(lines) + "\n"


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> [0, 1, 2]; ``"0,5,7"`` -> [0, 5, 7]."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if len(items) == 1 and "," not in text:
        count = int(items[0])
        if count < 1:
            raise ValueError("--seeds needs at least one seed")
        return list(range(count))
    return [int(t) for t in items]
