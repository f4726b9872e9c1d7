"""Shared test set-up: Triton runs in its CPU interpreter where no GPU exists.

Also fixtures several test files use: ``one_thread`` and ``make_synthetic_store``.

Tests sit in folders mirroring sseg's sub-packages (``tests/segmentation/``, ...; tests
spanning parts here), without ``__init__.py``: pytest puts each test file's folder on
``sys.path`` (its default ``prepend`` import mode), so helpers beside the tests that use
them (``deploy_helpers``, ``pb_bruteforce``) import by plain name, and test file names
must stay unique across folders.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# Hermetic caches: genre banks and the demo model go to a per-run folder, never to a
# ~/.cache/sseg left by earlier runs or other versions.
if "SSEG_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="sseg-test-cache-")
    os.environ["SSEG_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op torch thread for a test: tiny models run faster and steadier on a
    busy 2-core box. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def make_synthetic_store(tmp_path_factory) -> Callable[..., object]:
    """Factory of synthetic feature stores (:func:`sseg.training.synthetic.write_synthetic_store`).

    ``make_synthetic_store(num_videos, shots=(lo, hi), dim=32, seed=0)`` writes a new
    store in a fresh temporary folder and returns its ``FeatureStore``.
    """
    from sseg.training.synthetic import write_synthetic_store

    def make(num_videos: int, shots: tuple[int, int], dim: int = 32, seed: int = 0):
        path = tmp_path_factory.mktemp("synthetic") / "store"
        return write_synthetic_store(path, num_videos, shots=shots, dim=dim, seed=seed)

    return make
