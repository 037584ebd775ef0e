"""The web UI in a real headless Chromium (Debian's, driven by Playwright): upload, transcript, cancel, live log."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests.conftest import Spool, script, wait_for
from tests.web.conftest import Web, start_web

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As the machine notes say: no background networking on a closed network, a fresh profile, root needs no sandbox.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        context = b.new_context(bypass_csp=True)  # Playwright's waits evaluate strings, which our CSP forbids
        context.set_default_timeout(60_000)  # two shared cores under load: generous deadlines, no sleeps
        try:
            yield context
        finally:
            b.close()


def test_drop_two_files_see_upload_progress_then_the_transcript(served: tuple[Spool, Web], browser: Any) -> None:
    _spool, web = served
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 900})
    try:
        page.goto(web.url + "/")
        page.wait_for_selector("#health .dot.ok")  # the daemon's health on top
        files = [["interview.wav", script(duration=2, segments=2).decode()], ["memo.wav", script(duration=1).decode()]]
        drop = page.evaluate_handle(
            """(files) => { const dt = new DataTransfer();
                for (const [name, text] of files) dt.items.add(new File([text], name, {type: "audio/wav"}));
                return dt; }""",
            files,
        )
        page.dispatch_event("#drop", "drop", {"dataTransfer": drop})
        page.wait_for_function("document.querySelectorAll('#uploads li a').length === 2")
        assert page.eval_on_selector_all("#uploads progress", "ps => ps.map(p => p.value)") == [100, 100]
        page.wait_for_selector("#jobs tr:has-text('interview.wav') .state.succeeded")  # the table follows by SSE
        page.wait_for_selector("#alerts .alert.warning:has-text('web_test')")  # firing alerts on top
        shots = os.environ.get("SPOOL_WEB_SCREENSHOTS")  # the README's pictures: SPOOL_WEB_SCREENSHOTS=docs
        if shots:
            page.screenshot(path=f"{shots}/web-ui.png", full_page=True)
        page.click("#uploads li:has-text('interview.wav') a")
        page.wait_for_function("document.querySelector('#transcript').textContent.includes('segment 2 of 2.')")
        assert page.text_content("#state") == "succeeded"
        assert "job.succeeded" in page.text_content("#events")
        assert page.eval_on_selector_all("#downloads a", "as => as.map(a => a.textContent)")[:1] == ["txt"]
        if shots:
            page.wait_for_function("document.querySelector('#log').textContent.includes('done')")
            page.screenshot(path=f"{shots}/web-job.png", full_page=True)
    finally:
        page.close()


def test_the_job_page_tails_the_log_live_and_its_cancel_stops_the_worker(
    served: tuple[Spool, Web], browser: Any
) -> None:
    spool, web = served
    with web.client() as c:
        job_id = c.post(
            "/api/v1/jobs", files={"file": ("lecture.wav", script(duration=60, segments=60, delay_s=0.3, log=True))}
        ).json()["id"]
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    try:
        page.goto(f"{web.url}/jobs/{job_id}")
        page.wait_for_function("document.querySelector('#log').textContent.includes('segment 1 of 60 done')")
        page.wait_for_function("document.querySelector('#log').textContent.includes('segment 3 of 60 done')")
        page.wait_for_function("document.querySelector('#state').textContent === 'running'")
        pid = wait_for(lambda: _job(spool, job_id).pid, 10, what="the worker's pid")
        page.click("#cancel")
        page.wait_for_function("document.querySelector('#state').textContent === 'cancelled'")
        assert wait_for(lambda: not _alive(pid), 15, what="the worker gone")
        assert page.is_enabled("#retry") and page.is_disabled("#cancel")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling on a phone
    finally:
        page.close()


def test_with_a_token_the_page_asks_for_it_then_follows_live_with_it(served: tuple[Spool, Web], browser: Any) -> None:
    spool, _ = served
    web = start_web(spool, token="a-token-for-the-browser-test")
    page = browser.new_page()
    try:
        page.goto(web.url + "/")
        page.wait_for_selector("#tokenbox.show")  # the shell loads; its data calls answered 401
        page.fill("#tokenform input", web.token)
        page.click("#tokenform button")
        page.wait_for_selector("#health .dot.ok")
        with web.client() as c:  # a job appears by the SSE stream, read by fetch with the Bearer header
            job_id = c.post("/api/v1/jobs", files={"file": ("tokened.wav", script(duration=1))}).json()["id"]
        page.wait_for_selector(f"#jobs tr[data-job='{job_id}'] .state.succeeded")
        other = browser.new_page()
        other.goto(f"{web.url}/jobs/{job_id}#token={web.token}")  # a link with the token in the fragment
        other.wait_for_function("document.querySelector('#transcript').textContent.includes('segment 1 of 1.')")
        assert "token" not in other.url
        other.close()
    finally:
        page.close()
        web.stop()


def _job(spool: Spool, job_id: str) -> Any:
    store = spool.store()
    try:
        return store.job(job_id)
    finally:
        store.close()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
