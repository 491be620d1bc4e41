"""File names of report outputs."""

from __future__ import annotations

import re


def safe_name(text) -> str:
    """A file-name component: anything but letters, digits, ``.``, ``-`` and ``_`` becomes ``-``."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return text or "none"
