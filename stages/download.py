"""download: every dataset params.yaml names -> data/raw/<name>/ plus data/raw/manifest.json."""

from __future__ import annotations

import logging

from pipeline.core.atomic import atomic_dir, write_json
from pipeline.core.errors import SourceError
from pipeline.data.sources import known, materialize, mirror_root
from stages.common import RAW, command, params

log = logging.getLogger(__name__)


@command
def main() -> None:
    """Fetch or load the datasets; optional benchmark sets that cannot be had are recorded as unavailable."""
    p = params()
    required = [p.data.classification.source, *p.data.sr.train, p.data.sr.test]
    optional = [b for b in p.data.sr.benchmarks if b not in required]
    for name in required + optional:
        if not known(name, p.data.sources):
            raise SourceError(f"dataset {name}: unknown; add a URL source under data.sources.{name}")
    mirror = mirror_root(p.data.mirror)
    manifest = {}
    with atomic_dir(RAW) as tmp:
        for name in required + optional:
            out = tmp / name
            out.mkdir()
            try:
                manifest[name] = {"available": True, "origin": materialize(name, out, mirror, p.data.sources)}
            except SourceError as exc:
                if name in required:
                    raise
                log.warning("benchmark skipped: %s", exc)
                out.rmdir()
                manifest[name] = {"available": False, "reason": str(exc)}
        write_json(tmp / "manifest.json", manifest)
    for name, entry in manifest.items():
        print(f"{name}: {entry.get('origin', 'unavailable')}")
