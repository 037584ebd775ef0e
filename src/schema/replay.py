"""Rebuild projections from the log and compare them with the stored ones.

``spool replay --verify`` is the proof that the projection is nothing but a
cache of the events: fold every stream from scratch in memory and report any
job whose stored row differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schema import projections
from schema.events import job_id_of
from schema.jobs import Job, apply
from schema.mapper import Recorded
from schema.store import EventStore


@dataclass
class VerifyReport:
    events: int = 0
    jobs: int = 0
    missing: list[str] = field(default_factory=list)  # folded but not stored
    extra: list[str] = field(default_factory=list)  # stored but no events
    differ: dict[str, list[str]] = field(default_factory=dict)  # job -> differing fields
    tables: list[str] = field(default_factory=list)  # other projections that differ

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.differ or self.tables)

    def lines(self) -> list[str]:
        out = [f"{self.events} events, {self.jobs} jobs folded"]
        out += [f"job {j}: in the log but missing from the projection" for j in self.missing]
        out += [f"job {j}: in the projection but has no events" for j in self.extra]
        out += [f"job {j}: differs in {', '.join(f)}" for j, f in self.differ.items()]
        out += [f"projection table {t} differs from the log" for t in self.tables]
        out.append("projection matches the log" if self.ok else "projection DIFFERS from the log")
        return out


def rebuild(store: EventStore, batch: int = 5000) -> tuple[dict[str, Job], int, list[Recorded]]:
    """Fold every job stream; return (jobs, events read, the daemon-level records)."""
    jobs: dict[str, Job] = {}
    others: list[Recorded] = []
    position, count = 0, 0
    while True:
        records = store.read_all(position, limit=batch)
        if not records:
            return jobs, count, others
        for rec in records:
            position = rec.position
            count += 1
            job_id = job_id_of(rec.stream)
            if job_id is None:
                others.append(rec)
                continue
            jobs[job_id] = apply(jobs.get(job_id), rec.event, at=rec.at, version=rec.version)


def verify(store: EventStore) -> VerifyReport:
    """Safe while daemons run: the log and the projection are read from one snapshot."""
    with store.snapshot():
        folded, count, others = rebuild(store)
        stored = store.stored_jobs()
        live = store.projection_snapshot()
    report = VerifyReport(events=count, jobs=len(folded))
    replayed = projections.rebuild(others)
    report.tables = sorted(t for t in replayed if replayed[t] != live.get(t))
    report.missing = sorted(set(folded) - set(stored))
    report.extra = sorted(set(stored) - set(folded))
    for job_id in sorted(set(folded) & set(stored)):
        a, b = folded[job_id].to_dict(), stored[job_id].to_dict()
        diff = [k for k in a if a[k] != b.get(k)]
        if diff:
            report.differ[job_id] = diff
    return report
