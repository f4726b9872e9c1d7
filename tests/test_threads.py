"""--threads: the default for a machine, and torch picking it up wherever torch loads."""

from __future__ import annotations

import subprocess
import sys

from sseg.threads import default_threads


def test_default_leaves_a_core_free_on_small_machines():
    assert [default_threads(c) for c in (1, 2, 3, 4, 16, 64)] == [1, 1, 1, 2, 8, 8]


def test_threads_set_before_torch_loads_apply_when_a_thread_loads_it():
    code = (
        "import sys, threading\n"
        "from sseg.threads import apply_threads\n"
        "apply_threads(1)\n"
        "assert 'torch' not in sys.modules\n"  # no torch import on the command's start
        "loaded = []\n"
        "thread = threading.Thread(target=lambda: loaded.append(__import__('torch')))\n"
        "thread.start(); thread.join()\n"
        "print(loaded[0].get_num_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_one_malloc_arena_unless_the_user_chose():
    """In fresh processes (it changes the process's malloc for good)."""
    import os
    import subprocess
    import sys

    code = "from sseg.threads import share_one_malloc_arena as f; print(f())"

    def run(**env: str) -> str:
        clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
        done = subprocess.run(
            [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
        )
        return done.stdout.strip()

    assert run(MALLOC_ARENA_MAX="4") == "False"  # the user's setting stands
    assert run() == str(sys.platform.startswith("linux"))
