"""Where caches, artifacts and results live. Every root can be moved with an environment variable."""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from pathlib import Path


def cache_root() -> Path:
    """Per-user cache (features, converted weights); ``LGM_BENCH_CACHE`` overrides it. Synthetic sets
    live with the results (``<results>/artifacts``)."""
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


TEMP_SUFFIX = ".tmp"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


def _temp_prefix(path: Path) -> str:
    # the owner's pid and host in the name let a later run tell an orphan (its writer died) from a live
    # write, also on a results directory that jobs on other machines share
    return f".{path.name}.{os.getpid()}@{_host()}."


def _process_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it back at once
    os.umask(mask)
    return mask


_UMASK = _process_umask()

def make_temp(path: Path) -> Path:
    """A fresh, exclusively created temp file beside ``path`` (``mkstemp``: unpredictable, never
    through an existing file or link); ``os.replace`` it onto ``path`` when done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX + path.suffix, dir=path.parent)
    try:
        # mkstemp makes the file 0600; the renamed file gets the mode a plain open() would give it, so a
        # results directory or report on a shared file system stays readable by whom the umask allows
        os.fchmod(fd, 0o666 & ~_UMASK)
    finally:
        os.close(fd)
    return Path(name)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path`` and rename, so readers never see half a file."""
    tmp = make_temp(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_target(path: Path) -> Path:
    """A temp path beside ``path`` for writers that need a filename; ``os.replace`` it when done."""
    return make_temp(path)


_TEMP_NAME = re.compile(r"^\..+\.(\d+)(?:@([A-Za-z0-9-]+))?\.[^.]+" + re.escape(TEMP_SUFFIX) + r"(\.\w+)?$")
# A temp file of another machine's process cannot be checked for a live writer; writes take minutes at
# most, so one untouched for a day is an orphan.
OTHER_HOST_TEMP_AGE_S = 24 * 3600


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(root: Path) -> list[Path]:
    """Delete the temp files under ``root`` whose writer is no longer running (a killed run leaves
    them); temps of live processes (another runner on the same directory) are left alone, and those
    written on another machine (jobs sharing the results directory) until they are a day old."""
    removed: list[Path] = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for path in root.rglob(f".*{TEMP_SUFFIX}*"):
        match = _TEMP_NAME.match(path.name)
        if match is None or not path.is_file() or path.is_symlink():
            continue
        host = match.group(2)
        if host is None or host == _host():
            orphan = not _pid_alive(int(match.group(1)))
        else:
            orphan = time.time() - path.stat().st_mtime > OTHER_HOST_TEMP_AGE_S
        if orphan:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
