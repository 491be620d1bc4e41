"""How much of the machine the image stream may use: host memory for preloaded splits, shared memory
for batches in flight between decode workers and the main process.

* Preload budget: a split whose decoded uint8 pixels fit is decoded once into one contiguous buffer
  and served from memory for the rest of the phase; a larger one is decoded batch by batch. Default:
  a quarter of the machine's physical memory; ``LGM_BENCH_PRELOAD_GB`` sets it (0: never preload).
* Shared-memory budget: decode workers hand batches to the main process through ``/dev/shm``
  (Docker's default is 64 MB). The stream sizes its wire chunks so that every chunk in flight fits in
  half of what is free there; ``LGM_BENCH_SHM_MB`` overrides the size it reads.
"""

from __future__ import annotations

import os
from pathlib import Path

PRELOAD_FRACTION = 0.25  # of physical memory, when LGM_BENCH_PRELOAD_GB is not set
SHM_PATH = Path("/dev/shm")
SHM_FRACTION = 0.5  # of the free shared memory, for every wire chunk in flight together
FALLBACK_SHM_BYTES = 64 * 2**20  # where /dev/shm cannot be read: Docker's default


def _env_float(name: str) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number; set it to a size, e.g. {name}=8") from None
    if value < 0:
        raise ValueError(f"{name}={text!r} is negative; set it to a size >= 0")
    return value


def physical_memory_bytes() -> int:
    """The machine's physical memory (0 when the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def preload_budget_bytes() -> int:
    """Bytes of decoded pixels a split may occupy to be preloaded (``LGM_BENCH_PRELOAD_GB``, else a
    quarter of physical memory)."""
    gb = _env_float("LGM_BENCH_PRELOAD_GB")
    if gb is not None:
        return int(gb * 2**30)
    return int(PRELOAD_FRACTION * physical_memory_bytes())


def shm_free_bytes() -> int:
    """Free bytes of ``/dev/shm`` (``LGM_BENCH_SHM_MB`` overrides); Docker's 64 MB when unreadable."""
    mb = _env_float("LGM_BENCH_SHM_MB")
    if mb is not None:
        return int(mb * 2**20)
    try:
        stat = os.statvfs(SHM_PATH)
    except OSError:
        return FALLBACK_SHM_BYTES
    return int(stat.f_bavail * stat.f_frsize)


def wire_budget_bytes() -> int:
    """Bytes that every wire chunk in flight may take together."""
    return int(SHM_FRACTION * shm_free_bytes())
