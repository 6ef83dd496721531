"""The console's own stylesheet and script, served from static/ by name (no other file)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

FOLDER = Path(__file__).parent / "static"
TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    content: bytes
    content_type: str
    digest: str


@cache
def asset(name: str) -> Asset | None:
    """The file `name` of static/, read once; None for any other name."""
    path = FOLDER / name
    if name not in {found.name for found in FOLDER.iterdir()} or path.suffix not in TYPES:
        return None
    content = path.read_bytes()
    return Asset(content, TYPES[path.suffix], hashlib.sha256(content).hexdigest()[:12])
