"""Canonical hashing of configs, so keys are stable across processes and machines."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(obj: Any, length: int = 64) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]
