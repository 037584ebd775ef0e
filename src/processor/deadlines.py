"""The limits a running job and a starting worker are held to: load time, memory, probe, stall, hard timeout.

A mixin of :class:`processor.jobcontrol.JobControl`: each check only decides
and calls ``stop``; the kill and the job's event follow there.
"""

from __future__ import annotations

from typing import Any

from processor.runs import Run, StopReason
from processor.supervisor import WorkerProcess, WorkerState

RSS_CHECK_S = 1.0  # how often a running worker's resident size is compared with its limit


class Deadlines:
    settings: Any
    pool: Any
    load_errors: dict[tuple[str, str], str]
    log: Any

    def stop(self, run: Run, reason: StopReason) -> None:
        raise NotImplementedError

    def _check_starting(self, now: float) -> None:
        """A worker that does not become ready in time counts as a failed load."""
        for worker in list(self.pool.workers.values()):
            if worker.state is WorkerState.starting and now - worker.spawned_at >= self.settings.worker_start_timeout_s:
                limit = self.settings.worker_start_timeout_s
                self.pool.load_failures[worker.key] = self.pool.load_failures.get(worker.key, 0) + 1
                self.load_errors[worker.key] = f"the worker did not load {worker.key[1]} within {limit:.0f} s"
                self.log.error("worker.start_timeout", worker=worker.wid, limit_s=limit)
                worker.begin_stop(now, self.settings.grace_s)

    def _check_memory(self, run: Run, worker: WorkerProcess, now: float) -> None:
        """The RSS limit holds during a job, not only between jobs (one file once took a worker to 5.8 GB)."""
        if now - run.last_rss_check < RSS_CHECK_S:
            return
        run.last_rss_check = now
        limit = self.settings.worker_rss_limit_mb
        rss_mb = worker.rss() // 2**20
        if rss_mb > limit:
            message = f"the worker used {rss_mb} MB, above worker_rss_limit_mb = {limit}; it was killed"
            self.stop(run, StopReason("fail", "memory_limit", message))

    def _check_deadlines(self, run: Run, worker: WorkerProcess, now: float) -> None:
        s = self.settings
        self._check_memory(run, worker, now)
        if run.stop is not None:
            return
        if not run.probed and now - run.started >= s.probe_timeout_s:
            self.stop(
                run, StopReason("fail", "probe_timeout", f"probing the input took over {s.probe_timeout_s:.0f} s")
            )
        elif now - run.last_progress >= s.stall_s:
            self.stop(run, StopReason("fail", "hung", f"no progress for {s.stall_s:.0f} s; the worker was killed"))
        elif run.hard_deadline is not None and now >= run.hard_deadline:
            limit = run.hard_deadline - run.started
            self.stop(run, StopReason("fail", "timeout", f"still running after {limit:.0f} s (hard timeout); killed"))
