"""The visual report: one self-contained page whose numbers match the event log."""

from __future__ import annotations

from html.parser import HTMLParser

from ops import html_report
from ops import report as report_mod
from processor.clock import FakeClock
from schema import events as ev
from tests.ops.conftest import MakeCtx
from tests.ops.test_prometheus import finished


class Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict[str, str]] = {}
        self.tags: set[str] = set()
        self.urls: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self._section = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        if tag == "section":
            self._section = a["id"]
            self.sections[a["id"]] = a
        if tag == "tr" and "data-job" in a:
            self.rows.setdefault(self._section, []).append(a["data-job"])
        for key in ("href", "src"):
            if key in a:
                self.urls.append(a[key])


def test_page_structure_and_numbers_match_the_log(make_ctx: MakeCtx, clock: FakeClock) -> None:
    ctx = make_ctx(free_disk_floor_mb=0)
    for i in range(4):
        finished(ctx.store, clock, i, ok=i != 2, audio=60.0 * (i + 1))
        clock.advance(600)
    ctx.store.append(
        ev.DAEMON_STREAM,
        [
            ev.AlertRaised(
                rule="orphans",
                level="critical",
                metric="orphaned_cleaned",
                value=1,
                threshold=0,
                message="a worker died",
            )
        ],
    )
    for i in (10, 11, 12):  # three jobs queued at once, then one starts
        ctx.store.append(
            ev.job_stream(f"j{i}"), [ev.JobSubmitted(job_id=f"j{i}", source=f"{i}.wav", size=1, mtime_ns=1)]
        )
    ctx.store.append("job-j10", [ev.JobStarted(attempt=1, worker="w", pid=1, create_time=1.0, engine="t", model="m")])
    (ctx.layout.logs / "j0.log").write_text("log")
    clock.advance(60)
    report = report_mod.build(ctx.store, ctx.layout, ctx.settings, clock.wall())
    path = html_report.write(report, ctx.store, clock.wall(), ctx.layout.logs, ctx.layout.reports)
    page = Sections()
    page.feed((ctx.layout.reports / "latest.html").read_text())
    assert path.read_text() == (ctx.layout.reports / "latest.html").read_text()
    assert list(page.sections) == ["alerts", "summary", "window-24h", "window-7d", "slowest", "failed"]
    day = page.sections["window-24h"]
    assert (day["data-succeeded"], day["data-failed"], day["data-alerts"]) == ("3", "1", "1")
    assert float(day["data-audio-s"]) == 60.0 + 120.0 + 240.0  # jobs 0, 1 and 3
    assert day["data-max-queue"] == "3"
    assert page.rows["slowest"] and page.rows["failed"] == ["j2"]
    assert "script" not in page.tags  # no JavaScript
    assert all(not u.startswith(("http:", "https:", "//")) for u in page.urls)  # no network
    assert "../../logs/j0.log" in page.urls
    assert "critical" in (ctx.layout.reports / "latest.html").read_text()
