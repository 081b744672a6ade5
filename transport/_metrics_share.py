"""``/metrics`` under ``serve --workers N``: every worker's samples, merged by whichever worker is scraped.

The kernel spreads connections over the workers (``SO_REUSEPORT``), so a
scrape lands on one of them at random. Each worker therefore writes its
samples to ``FLASHSALE_METRICS_DIR`` (a directory the parent process makes
and removes) once a second and at every scrape, and a scrape answers with
all of them merged, the way prometheus_client's multiprocess mode does:
counters and histograms summed over the workers (a worker that exited keeps
its counts), gauges one series per live worker, labelled ``worker="<pid>"``.
One scrape of the shared port is then the whole sale.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.core import Metric

ENV = "FLASHSALE_METRICS_DIR"

Key = tuple[str, tuple[tuple[str, str], ...]]


class WorkerShare:
    """This worker's file in the shared directory, and the merge of everyone's."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.pid = os.getpid()
        self.path = self.dir / f"{self.pid}.json"

    def publish(self, families: Iterable[Metric]) -> None:
        """Write this worker's samples (atomically: a reader sees the old file or the new one)."""
        data = {
            f.name: {
                "type": f.type,
                "doc": f.documentation,
                "samples": [[s.name, s.labels, s.value] for s in f.samples],
            }
            for f in families
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(data))
        tmp.replace(self.path)

    def _others(self) -> Iterator[tuple[int, Any]]:
        for path in self.dir.glob("*.json"):
            pid = int(path.stem) if path.stem.isdigit() else 0
            if pid == self.pid or not pid:
                continue
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                yield pid, orjson.loads(path.read_bytes())

    def merged(self, own: list[Metric]) -> list[Metric]:
        """``own`` families with every other worker's samples added (see the module docstring)."""
        others = list(self._others())
        out: list[Metric] = []
        for family in own:
            merged = Metric(family.name, family.documentation, family.type)
            if family.type == "gauge":
                for s in family.samples:
                    merged.add_sample(s.name, {**s.labels, "worker": str(self.pid)}, s.value)
                for pid, data in others:
                    if not _alive(pid):
                        continue
                    for name, labels, value in _samples(data, family.name):
                        merged.add_sample(name, {**labels, "worker": str(pid)}, value)
            else:
                totals: dict[Key, float] = {}
                for s in family.samples:
                    key = (s.name, tuple(sorted(s.labels.items())))
                    totals[key] = totals.get(key, 0.0) + s.value
                for _, data in others:
                    for name, labels, value in _samples(data, family.name):
                        key = (name, tuple(sorted(labels.items())))
                        totals[key] = totals.get(key, 0.0) + value
                for (name, pairs), value in sorted(totals.items()):
                    merged.add_sample(name, dict(pairs), value)
            out.append(merged)
        return out

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def _samples(data: Any, family: str) -> list[tuple[str, dict[str, str], float]]:
    entry = data.get(family)
    if not isinstance(entry, dict):
        return []
    return [(str(n), dict(lab), float(v)) for n, lab, v in entry.get("samples", [])]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def from_env() -> WorkerShare | None:
    """The share when this process is one of ``--workers N`` (the parent sets :data:`ENV`)."""
    directory = os.environ.get(ENV)
    return WorkerShare(directory) if directory else None
