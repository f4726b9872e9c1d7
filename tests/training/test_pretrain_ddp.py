"""Two CPU ranks (gloo) under torchrun: parameters stay in sync and the loss falls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import torch
from safetensors.torch import load_file

from sseg.modeling.model import SceneModel
from sseg.training.synthetic import write_synthetic_store

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from safetensors.torch import save_file
    from sseg.training.pretrain import run_pretraining
    from sseg.training.pretrain_config import load_config

    torch.set_num_threads(1)
    cfg = load_config(sys.argv[1])
    summary = run_pretraining(cfg, progress=False)
    rank = summary["rank"]
    params = {k: v.detach().contiguous() for k, v in summary["objective"].state_dict().items()}
    save_file(params, os.path.join(cfg.out_dir, f"rank{rank}.safetensors"))
    with open(os.path.join(cfg.out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"history": summary["history"], "world": summary["world_size"]}, f)
    """
)


def test_two_gloo_ranks_stay_in_sync(tmp_path):
    store = tmp_path / "store"
    write_synthetic_store(store, 8, shots=(30, 60), dim=16, seed=2)
    out = tmp_path / "run"
    cfg = {
        "store": str(store), "out_dir": str(out), "hidden": 16, "heads": 2, "layers": 1,
        "proj_dim": 8, "batch_size": 6, "steps": 30, "warmup_steps": 2, "lr": 3e-3,
        "checkpoint_every": 10, "device": "cpu", "seed": 3,
    }  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "worker.py"), str(tmp_path / "cfg.json")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    r0, r1 = (load_file(str(out / f"rank{r}.safetensors")) for r in (0, 1))
    assert r0.keys() == r1.keys()
    for name in r0:
        assert torch.equal(r0[name], r1[name]), f"{name} differs across ranks"
    h0, h1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert h0["world"] == 2 and h0["history"] == h1["history"]
    history = h0["history"]
    assert len(history) == 30 and np.isfinite(history).all()
    assert np.mean(history[-5:]) < np.mean(history[:5])
    saved = SceneModel.load(out / "model.safetensors").state_dict()
    for name, value in saved.items():
        assert torch.equal(value, r0[f"scene.{name}"])
    assert (out / "train_state.safetensors").is_file()


LOSSES = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from sseg.training.pretrain import run_pretraining
    from sseg.training.pretrain_config import load_config
    from sseg.training.train_log import read_metrics

    torch.set_num_threads(1)
    cfg = load_config(sys.argv[1])
    summary = run_pretraining(cfg, progress=False)
    if summary["rank"] == 0:
        rows = read_metrics(cfg.out_dir)
        with open(os.path.join(cfg.out_dir, "losses.json"), "w") as f:
            json.dump({"history": summary["history"],
                       "l_pb": [float(r["l_pb"]) for r in rows],
                       "l_con": [float(r["l_con"]) for r in rows]}, f)
    """
)


def test_two_ranks_match_one_process_at_the_same_global_batch(tmp_path):
    """Without dropout, 2 ranks x 4 windows give the losses of 1 process x 8 windows:
    same windows, same anchors, global negatives, L_pb balanced over the global batch."""
    store = tmp_path / "store"
    write_synthetic_store(store, 6, shots=(30, 50), dim=16, seed=5)
    (tmp_path / "worker.py").write_text(LOSSES)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = {}
    for world, batch in ((1, 8), (2, 4)):
        out = tmp_path / f"w{world}"
        cfg = {
            "store": str(store), "out_dir": str(out), "hidden": 16, "heads": 2, "layers": 1,
            "proj_dim": 8, "batch_size": batch, "steps": 4, "warmup_steps": 1, "lr": 1e-3,
            "dropout": 0.0, "device": "cpu", "seed": 7, "checkpoint_every": 0,
        }  # fmt: skip
        (tmp_path / f"cfg{world}.json").write_text(json.dumps(cfg))
        launcher = [sys.executable] if world == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            "2"]  # fmt: skip
        cmd = [*launcher, str(tmp_path / "worker.py"), str(tmp_path / f"cfg{world}.json")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        results[world] = json.loads((out / "losses.json").read_text())
    for key in ("history", "l_pb", "l_con"):
        np.testing.assert_allclose(results[2][key], results[1][key], rtol=2e-5, atol=1e-6)


KEEP_RUNNING = textwrap.dedent(
    """
    import os, sys, time
    from sseg.training.loop import die_with_launcher

    die_with_launcher()
    open(os.path.join(sys.argv[1], f"pid{os.environ['RANK']}"), "w").write(str(os.getpid()))
    time.sleep(120)
    """
)


def test_workers_stop_when_the_launcher_is_killed(tmp_path):
    import signal
    import time

    (tmp_path / "worker.py").write_text(KEEP_RUNNING)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "worker.py"), str(tmp_path)]  # fmt: skip
    launcher = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("pid*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = [int(p.read_text()) for p in sorted(tmp_path.glob("pid*"))]
        assert len(pids) == 2
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 30
        alive = pids
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [pid for pid in alive if _alive(pid)]
        assert not alive, f"workers {alive} outlived their launcher"
    finally:
        launcher.kill()
        for pid in pids:  # never leave a worker of this test behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie has exited
        return handle.read().split()[2] != "Z"
