"""Generic training loop shared by pre-training and fine-tuning.

What it provides:

* :func:`seed_everything` and :func:`step_seed` - the data of step ``s`` on rank ``r``
  and the dropout RNG of that step are pure functions of ``(seed, s, r)``, so a run
  resumed from a checkpoint reproduces the uninterrupted loss curve exactly.
* :class:`LARS` and AdamW (:func:`build_optimizer`), :func:`cosine_lr` with warmup.
* AMP on CUDA (bf16 autocast, or fp16 autocast + ``GradScaler``), gradient clipping.
* :func:`save_train_state` / :func:`load_train_state`: model + optimizer + scaler +
  step in one safetensors file (tensors flattened, JSON metadata), written atomically.
* :class:`Trainer`: the loop, a tqdm bar with loss and sequences/s, checkpoints every
  N steps, DDP under ``torchrun`` (:func:`init_distributed`; gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import InputError

STATE_FORMAT = "sseg.train_state.v1"
STATE_FILE = "train_state.safetensors"


# --------------------------------------------------------------------------- seeding


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_seed(seed: int, step: int, rank: int = 0, stream: str = "") -> int:
    """A 63-bit seed that depends only on ``(seed, step, rank, stream)``."""
    digest = hashlib.blake2b(f"{seed}:{step}:{rank}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def step_rng(seed: int, step: int, rank: int = 0, stream: str = "data") -> np.random.Generator:
    """NumPy generator for the data of one step on one rank."""
    return np.random.default_rng(step_seed(seed, step, rank, stream))


# --------------------------------------------------------------------------- optimisers


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017): SGD with momentum and a layer-wise trust ratio.

    ``update = lr * trust * (g + wd * p)`` with ``trust = eta * |p| / |g + wd * p|``;
    1-D parameters (biases, norms) get neither weight decay nor adaptation when
    ``exclude_1d`` is set, as is usual.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-6,
        eta: float = 0.001,
        exclude_1d: bool = True,
    ):
        if lr < 0 or momentum < 0 or weight_decay < 0 or eta <= 0:
            raise ValueError("LARS: lr, momentum and weight_decay must be >= 0, eta > 0")
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, exclude_1d=exclude_1d
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # noqa: D102
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if not (group["exclude_1d"] and p.ndim <= 1):
                    if group["weight_decay"]:
                        grad = grad.add(p, alpha=group["weight_decay"])
                    p_norm, g_norm = torch.linalg.norm(p), torch.linalg.norm(grad)
                    trust = torch.where(
                        (p_norm > 0) & (g_norm > 0), group["eta"] * p_norm / g_norm, 1.0
                    )
                    grad = grad * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(grad).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def build_optimizer(
    params: Iterable[nn.Parameter],
    name: str = "adamw",
    lr: float = 1e-4,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """AdamW or LARS over ``params`` (only those with ``requires_grad``)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters")
    name = name.lower()
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
    if name == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r} (choose adamw or lars)")


def cosine_lr(
    step: int, total_steps: int, warmup_steps: int, base_lr: float, min_ratio: float = 0.0
) -> float:
    """Learning rate at ``step`` (0-based): linear warmup, then cosine decay to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# --------------------------------------------------------------------------- distributed


@dataclass
class DistInfo:
    """Rank layout of this process (1 process when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0


def dist_env() -> DistInfo:
    """The rank layout torchrun's environment describes (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``), without joining a process group; one process when not set."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    if not 0 <= rank < world:
        raise InputError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return DistInfo(rank, world, int(os.environ.get("LOCAL_RANK", rank)))


def die_with_launcher() -> None:
    """Under torchrun, have the kernel stop this worker (SIGTERM) when its launcher dies.

    A launcher killed with SIGKILL cannot stop its workers itself; without this they
    keep running (and writing). Linux only; a no-op elsewhere or outside torchrun.
    """
    import signal
    import sys

    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        parent = os.getppid()
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the launcher died before the call
            os.kill(os.getpid(), signal.SIGTERM)


def sigterm_as_interrupt() -> None:
    """Turn SIGTERM (torchrun stopping a worker, a batch system's kill) into
    ``KeyboardInterrupt``, so ``with`` blocks flush and release what they hold."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment, if any.

    Uses nccl when the device is CUDA, gloo otherwise. Without ``WORLD_SIZE`` > 1 it
    does nothing and returns a single-process :class:`DistInfo`. A worker stops when
    its launcher dies (:func:`die_with_launcher`).
    """
    info = dist_env()
    if not info.enabled:
        return info
    import torch.distributed as dist

    die_with_launcher()
    rank, world, local = info.rank, info.world_size, info.local_rank
    cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistInfo(rank, world, local)


def shard_indices(n: int, rank: int, world_size: int) -> range:
    """Items ``rank, rank + world, ...`` of ``n`` (DistributedSampler-style striding)."""
    return range(rank, n, world_size)


def all_reduce_mean(value: torch.Tensor, dist_info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over ranks (a no-op on one process)."""
    if not dist_info.enabled:
        return value
    import torch.distributed as dist

    value = value.detach().clone()
    dist.all_reduce(value)
    return value / dist_info.world_size


def _world() -> int:
    """World size of the initialised default process group (1 without one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def global_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum of a (detached) tensor over all ranks of the default group (itself on one)."""
    value = value.detach()
    if _world() == 1:
        return value
    import torch.distributed as dist

    value = value.clone()
    dist.all_reduce(value)
    return value


def global_class_balanced_mean(losses: torch.Tensor, groups: list[torch.Tensor]) -> torch.Tensor:
    """Mean over groups of each group's mean loss, the groups counted over **all** ranks.

    ``losses`` and each boolean mask in ``groups`` have the same shape. With the element
    counts ``n_g`` of group g summed over ranks, rank r returns
    ``world * mean_g(sum(losses[g] on r) / n_g)`` (groups empty everywhere are left out):
    DDP's gradient averaging and a mean over ranks then give exactly the loss of one
    process holding the global batch, whatever the world size.
    """
    counts = global_sum(torch.stack([g.sum() for g in groups]).float())
    present = counts > 0
    if not bool(present.any()):
        raise ValueError("every group is empty on every rank")
    parts = [losses[g].sum() / counts[i] for i, g in enumerate(groups) if bool(present[i])]
    return torch.stack(parts).mean() * _world()


@contextlib.contextmanager
def lock_out_dir(out_dir: str | Path, dist_info: DistInfo | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir/.lock`` (rank 0) while a run writes there.

    A second run on the same folder - or workers of an earlier run left behind by a
    killed launcher - makes this an :class:`InputError` instead of two writers.
    """
    import fcntl

    if dist_info is not None and not dist_info.is_main:
        yield
        return
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / ".lock", "a")  # noqa: SIM115 - held for the block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            msg = "another run is writing to this out_dir (its .lock is held)"
            raise InputError(msg, out) from None
        yield
    finally:
        handle.close()


# --------------------------------------------------------------------------- train state


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_train_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: dict[str, Any] | None = None,
    scaler: torch.amp.GradScaler | None = None,
    extra: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Atomically write model, optimizer, scaler and step to one safetensors file."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"extra.{k}": v for k, v in (extra_tensors or {}).items()})
    opt_tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors.update(opt_tensors)
    meta = {
        "format": STATE_FORMAT,
        "step": int(step),
        "config": config or {},
        "optimizer": opt_meta,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "extra": extra or {},
    }
    save_checkpoint(path, tensors, meta)


def load_train_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Restore what :func:`save_train_state` wrote.

    Returns its metadata (``step``, ``config``, ``extra``) with the extra tensors
    under ``"tensors"``.
    """
    tensors, meta = load_checkpoint(path, device)
    if meta.get("format") != STATE_FORMAT:
        raise InputError(f"not an sseg training state (format={meta.get('format')!r})", path)
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state)
    except RuntimeError as exc:
        raise InputError(f"training state does not match the model ({exc})", path) from exc
    if optimizer is not None:
        try:
            optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
        except (ValueError, KeyError) as exc:
            raise InputError(f"optimizer state does not match ({exc})", path) from exc
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    meta["tensors"] = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
    return meta


# --------------------------------------------------------------------------- trainer


@dataclass
class TrainConfig:
    """Optimisation settings of a :class:`Trainer` run."""

    steps: int = 1000
    lr: float = 1e-4
    min_lr_ratio: float = 0.0
    warmup_steps: int = 100
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    clip_grad: float | None = 1.0
    amp: str = "auto"  # auto | bf16 | fp16 | off (autocast only on CUDA unless bf16 is forced)
    seed: int = 0
    batch_size: int = 32  # sequences per rank per step (for the sequences/s readout)
    checkpoint_every: int = 500  # steps between train states; 0: only at the end
    checkpoint_minutes: float = 0.0  # also save when this much time passed; 0: off
    log_every: int = 10
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    amp = amp.lower()
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be auto, bf16, fp16 or off, got {amp!r}")
    if amp == "off" or (device.type != "cuda" and amp != "bf16"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


LossFn = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]


class Trainer:
    """Runs ``steps`` optimisation steps of ``loss_fn(model, batch_fn(step))``.

    Args:
        model: the module to train (its ``requires_grad`` parameters are optimised).
        loss_fn: ``(model, batch) -> (scalar loss, {name: float})``; ``model`` is the DDP
            wrapper when distributed.
        batch_fn: ``(step, rank) -> batch`` on the right device. For exact resume it must
            be a pure function of its arguments (e.g. built from :func:`step_rng`).
        config: :class:`TrainConfig`.
        out_dir: where ``train_state.safetensors`` goes (None: no checkpoints).
        device: torch device.
        dist_info: from :func:`init_distributed` (default: single process).
        on_step: optional ``(step, metrics)`` callback after each step (rank 0 only).
        hooks: ``(step, metrics) -> dict | None`` callables run after each step on
            **every** rank (they may use collectives, e.g. a validation pass); what they
            return is added to the metrics ``on_step`` sees.

    Metrics of a step are means over ranks; ``data_ms`` is the time ``batch_fn`` took
    (waiting for data) and ``step_ms`` the whole step.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        batch_fn: Callable[[int, int], Any],
        config: TrainConfig,
        out_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        dist_info: DistInfo | None = None,
        on_step: Callable[[int, dict[str, float]], None] | None = None,
        hooks: list[Callable[[int, dict[str, float]], dict[str, float] | None]] | None = None,
    ):
        self.config = config
        self.hooks = list(hooks or [])
        self._last_save = time.monotonic()
        self._saved_at: int | None = None
        self.device = torch.device(device)
        self.dist = dist_info or DistInfo()
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.batch_fn = batch_fn
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.on_step = on_step
        self.optimizer = build_optimizer(
            self.model.parameters(), config.optimizer, config.lr, config.weight_decay
        )
        self.amp_dtype = _amp_dtype(config.amp, self.device)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.step = 0
        self.history: list[float] = []
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped: nn.Module = DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.wrapped = self.model

    @property
    def state_path(self) -> Path | None:
        """Path of the train-state checkpoint."""
        return None if self.out_dir is None else self.out_dir / STATE_FILE

    def save(self) -> None:
        """Write the train state (rank 0), then wait for all ranks."""
        if self.state_path is not None and self.dist.is_main:
            save_train_state(
                self.state_path,
                self.model,
                self.optimizer,
                self.step,
                self.config.to_dict(),
                self.scaler,
                extra_tensors={"history": torch.tensor(self.history, dtype=torch.float64)},
            )
        self._last_save = time.monotonic()
        self._saved_at = self.step
        self._barrier()

    def resume(self, path: str | Path | None = None) -> int:
        """Load the train state (default: ``out_dir``'s); returns the step to continue at."""
        path = Path(path) if path is not None else self.state_path
        if path is None or not path.is_file():
            raise InputError("no training state to resume from", path or self.out_dir)
        meta = load_train_state(path, self.model, self.optimizer, self.scaler, self.device)
        saved = meta.get("config", {})
        for key in ("seed", "lr", "batch_size", "optimizer", "warmup_steps"):
            if key in saved and saved[key] != getattr(self.config, key):
                raise InputError(
                    f"cannot resume: {key} was {saved[key]!r}, now {getattr(self.config, key)!r}",
                    path,
                )
        self.step = int(meta["step"])
        history = meta["tensors"].get("history", torch.zeros(0, dtype=torch.float64))
        self.history = history.tolist()[: self.step]
        return self.step

    def _barrier(self) -> None:
        if self.dist.enabled:
            import torch.distributed as dist

            dist.barrier()

    def _set_lr(self, step: int) -> float:
        cfg = self.config
        lr = cosine_lr(step, cfg.steps, cfg.warmup_steps, cfg.lr, cfg.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def train_step(self, step: int) -> dict[str, float]:
        """One optimisation step; returns metrics with the rank-mean ``loss`` and ``lr``."""
        cfg = self.config
        start = time.perf_counter()
        torch.manual_seed(step_seed(cfg.seed, step, self.dist.rank, "torch"))
        lr = self._set_lr(step)
        batch = self.batch_fn(step, self.dist.rank)
        data_ms = (time.perf_counter() - start) * 1000
        self.wrapped.train()
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            loss, metrics = self.loss_fn(self.wrapped, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = float("nan")
        if cfg.clip_grad:
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], cfg.clip_grad
                )
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        metrics = {**metrics, "loss": float(loss.detach()), "data_ms": data_ms}
        metrics = self._rank_mean(metrics)
        step_ms = (time.perf_counter() - start) * 1000
        return {**metrics, "lr": lr, "grad_norm": grad_norm, "step_ms": step_ms}

    def _rank_mean(self, metrics: dict[str, float]) -> dict[str, float]:
        """Means over ranks of the metrics, plus ``save_now`` (rank 0's timed checkpoint
        decision, shared so that every rank calls :meth:`save` together)."""
        minutes = self.config.checkpoint_minutes
        due = bool(minutes) and time.monotonic() - self._last_save >= 60 * minutes
        names = sorted(metrics)
        values = torch.tensor(
            [float(metrics[k]) for k in names] + [float(due and self.dist.is_main)],
            dtype=torch.float64,
        )
        if self.dist.enabled:
            import torch.distributed as dist

            backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
            values = values.to(backend_device)
            dist.all_reduce(values)
            values = values.cpu()
            values[:-1] /= self.dist.world_size
        out = dict(zip(names, values[:-1].tolist(), strict=True))
        out["save_now"] = float(values[-1] > 0)
        return out

    def fit(self, stop_at: int | None = None) -> list[float]:
        """Train from ``self.step`` to ``config.steps`` (or ``stop_at``); returns the losses."""
        cfg = self.config
        end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        bar = None
        if cfg.progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step")
        seqs = cfg.batch_size * self.dist.world_size
        tick = time.perf_counter()
        try:
            while self.step < end:
                metrics = self.train_step(self.step)
                self.history.append(metrics["loss"])
                self.step += 1
                save_now = metrics.pop("save_now", 0.0) > 0
                for hook in self.hooks:
                    metrics.update(hook(self.step, metrics) or {})
                if self.on_step is not None and self.dist.is_main:
                    self.on_step(self.step, metrics)
                if bar is not None:
                    bar.update(1)
                    if self.step % max(1, cfg.log_every) == 0 or self.step == end:
                        now = time.perf_counter()
                        rate = seqs * max(1, cfg.log_every) / max(now - tick, 1e-9)
                        tick = now
                        bar.set_postfix(loss=f"{metrics['loss']:.4f}", seq_s=f"{rate:.1f}")
                if save_now or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                    self.save()
        finally:
            if bar is not None:
                bar.close()
        if self._saved_at != self.step:  # final state
            self.save()
        return self.history


def describe(config: TrainConfig) -> str:
    """One-line JSON of a config (for logs)."""
    return json.dumps(config.to_dict(), sort_keys=True)
