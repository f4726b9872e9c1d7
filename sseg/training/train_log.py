"""Per-step training metrics to ``metrics.csv`` (and TensorBoard when it is installed).

One row per step: the step, the loss and its parts (``l_con``, ``l_pb``), the
pseudo-boundary statistics of the objective, the learning rate, gradient norm, data
wait and step times, windows per second, and the validation losses on the steps that
have them (empty cells otherwise). A resumed run first drops the rows after the step it
resumes from (rewriting the file atomically), so the file always matches the run.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text

LOG_FILE = "metrics.csv"
COLUMNS = (
    "step", "loss", "l_con", "l_pb", "con_acc", "pb_acc", "pb_pos_frac", "pb_pred_frac",
    "lr", "grad_norm", "data_ms", "step_ms", "windows_s", "val_loss", "val_l_con", "val_l_pb",
)  # fmt: skip


def _kept_rows(path: Path, up_to_step: int) -> tuple[list[str] | None, list[list[str]]]:
    """Header and complete rows with step <= ``up_to_step`` of an existing log."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, []
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return None, []
    header, kept = rows[0], []
    for row in rows[1:]:
        if len(row) != len(header):  # a line cut by a kill
            continue
        try:
            if int(row[0]) <= up_to_step:
                kept.append(row)
        except ValueError:
            continue
    return header, kept


class MetricsLog:
    """Append one CSV row per step to ``out_dir/metrics.csv``.

    ``start_step``: the step the run starts (or resumes) at; rows of later steps from an
    earlier run are dropped. Metrics not in :data:`COLUMNS` are added as extra columns
    when they appear in the first row written.
    """

    def __init__(self, out_dir: str | Path, start_step: int = 0, windows_per_step: int = 0):
        self.path = Path(out_dir) / LOG_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.windows_per_step = windows_per_step
        header, kept = _kept_rows(self.path, start_step) if start_step else (None, [])
        self.columns: list[str] | None = header
        if header is not None:
            buffer = io.StringIO()
            csv.writer(buffer).writerows([header, *kept])
            atomic_write_text(self.path, buffer.getvalue())
        elif self.path.exists():
            self.path.unlink()
        self._handle = None
        self._tensorboard = _tensorboard(Path(out_dir) / "tensorboard")

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        """Log the metrics of ``step`` (1-based: the number of steps done)."""
        row = {"step": step, **metrics}
        if self.windows_per_step and metrics.get("step_ms"):
            row["windows_s"] = self.windows_per_step / (metrics["step_ms"] / 1000)
        if self.columns is None:
            self.columns = [*COLUMNS, *sorted(k for k in row if k not in COLUMNS)]
            self._open().write(",".join(self.columns) + "\n")
        values = [row.get(name, "") for name in self.columns]
        text = ",".join(_cell(v) for v in values)
        handle = self._open()
        handle.write(text + "\n")
        handle.flush()
        if self._tensorboard is not None:
            for name, value in row.items():
                if name != "step" and isinstance(value, (int, float)):
                    self._tensorboard.add_scalar(name, value, step)

    def _open(self):
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        return self._handle

    def close(self) -> None:
        """Close the file (and the TensorBoard writer)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _tensorboard(folder: Path):
    """A TensorBoard ``SummaryWriter`` when the ``tensorboard`` package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


def read_metrics(out_dir: str | Path) -> list[dict[str, str]]:
    """The rows of ``out_dir/metrics.csv`` as dicts (for tests and notebooks)."""
    with open(Path(out_dir) / LOG_FILE, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def pseudo_boundary_stats(logits, target, mask) -> dict[str, float]:
    """How the boundary head does on the pseudo-boundaries of a batch.

    ``pb_acc``: balanced accuracy of ``logits > 0`` against the pseudo-boundary targets
    within ``mask``; ``pb_pos_frac``: share of pseudo-boundary shots; ``pb_pred_frac``:
    share of shots the head calls boundaries.
    """
    import torch

    with torch.no_grad():
        pred = logits.detach() > 0
        pos, neg = mask & (target > 0.5), mask & (target <= 0.5)
        counts = torch.stack(
            [pos.sum(), neg.sum(), (pred & pos).sum(), (~pred & neg).sum(), (pred & mask).sum(),
             mask.sum()]
        ).float().clamp(min=1).tolist()  # fmt: skip
    n_pos, n_neg, true_pos, true_neg, called, shots = counts
    return {
        "pb_acc": 0.5 * (true_pos / n_pos + true_neg / n_neg),
        "pb_pos_frac": n_pos / shots,
        "pb_pred_frac": called / shots,
    }
