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

from sseg.model import SceneModel
from sseg.synthetic import write_synthetic_store

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from safetensors.torch import save_file
    from sseg.pretrain import run_pretraining
    from sseg.pretrain_config import load_config

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
