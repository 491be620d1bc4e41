"""Canonical hashing of configs, so keys are stable across processes and machines."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(obj: Any, length: int = 64) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


_SAFE_NAME = re.compile(r"[\w.:@=+-]{1,48}")


def path_safe(name: str) -> str:
    """``name`` as one short file-name part: registered names as they are; references (which may hold
    ``/`` or be long, e.g. ``folder:/data/x``) shortened and tagged with a hash of the full name."""
    if _SAFE_NAME.fullmatch(name):
        return name
    return re.sub(r"[^\w.:@=+-]+", "-", name)[:32].strip("-") + "-" + stable_hash(name, 8)


# Hashing a large file takes a while; remember digests of files we already read in this process.
_MEMO_MIN_BYTES = 16 << 20
_sha_memo: dict[tuple[str, int, int, int, int], str] = {}


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (large files are memoised on path, size, inode and mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    if key in _sha_memo:
        return _sha_memo[key]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    if st.st_size >= _MEMO_MIN_BYTES:
        _sha_memo[key] = hexdigest
    return hexdigest
