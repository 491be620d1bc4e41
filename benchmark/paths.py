"""Where caches, artifacts and results live. Every root can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Per-user cache (features, converted weights, artifacts); ``LGM_BENCH_CACHE`` overrides it."""
    env = os.environ.get("LGM_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lgm-bench"))


def weights_dir() -> Path:
    """Weights we convert ourselves (e.g. extracted from ONNX) are cached here."""
    return cache_root() / "weights"


def features_dir() -> Path:
    return cache_root() / "features"


def artifacts_dir() -> Path:
    return cache_root() / "artifacts"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path`` and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_target(path: Path) -> Path:
    """A temp path beside ``path`` for writers that need a filename; ``os.replace`` it when done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
