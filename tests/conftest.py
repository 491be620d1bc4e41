"""Shared test setup: offline, and every cache in a per-session temporary directory."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep features, weights and artifacts of the tests out of the user's cache.

    ``LGM_BENCH_TEST_CACHE`` points at a persistent directory instead, to keep extracted weights
    between test sessions while developing.
    """
    root = os.environ.get("LGM_BENCH_TEST_CACHE") or str(tmp_path_factory.mktemp("lgm-bench-cache"))
    os.environ["LGM_BENCH_CACHE"] = root


@pytest.fixture
def one_thread():
    """Toy-sized tensors on a shared 2-core machine: one intra-op thread is faster (no OpenMP contention)
    and keeps timings steady. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def figures(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Print a test's figures on the terminal even while pytest captures output (CI's log shows them)."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def show(text: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"\n{text}", flush=True)

    return show
