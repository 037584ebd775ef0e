"""``spool``: a thin CLI.  Each command parses, builds settings, calls one function, returns an exit code.

Every failure of every command prints one line (``spool: error: ...``) and
exits with a documented code (:mod:`processor.cli_errors`); ``--debug`` adds
the traceback.  Global options work before the command too
(``spool --root R status``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ground.errors import SpoolError
from processor import cli_errors, config, views
from processor.argtypes import count, seconds
from processor.config import Settings
from processor.status import status_data
from processor.submit import cmd_submit
from schema import events as ev
from schema.errors import JobNotFound
from schema.jobs import Job, JobState
from schema.store import EventStore
from spool import fsio, names

Handler = Callable[[argparse.Namespace, Settings], int]
Add = Callable[[str, Handler, str], argparse.ArgumentParser]


@dataclass(frozen=True)
class Assembly:
    """What the composition root (``spoolscribe/``) plugs in: other packages' commands, the checks of
    their configuration sections, and the daemon's scheduler.  Empty: processor's commands alone."""

    commands: Sequence[Callable[[Add], None]] = ()
    checks: Sequence[Callable[[Settings], None]] = ()
    scheduler: Callable[[Any], Any] | None = None


def _out(text: str) -> None:
    """Human output: whatever a name or a message holds, no control character reaches the terminal."""
    sys.stdout.write(names.printable(text, keep="\n\t") + "\n")


def _json(data: Any) -> None:
    sys.stdout.write(names.json_safe(json.dumps(data, indent=2, ensure_ascii=False, default=str)) + "\n")


def _store(args: argparse.Namespace, settings: Settings) -> EventStore:
    """The spool's store, closed when the command ends (``main`` closes ``args.closing``), however it ends."""
    layout = settings.layout
    if not layout.root.is_dir():
        raise SpoolError(
            f"{layout.root} is not a spool (no such directory); create one with `spool init --root {layout.root}`"
        )
    return args.closing.enter_context(contextlib.closing(settings.open_store()))


def _find_job(store: EventStore, ref: str) -> Job:
    """A job by id or unique prefix; anything but hex digits names no job (and never reaches SQL)."""
    if not re.fullmatch(r"[0-9a-fA-F]{1,32}", ref):
        raise JobNotFound(ref)
    return store.find_job(ref.lower())


# --- commands ------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    layout = settings.layout
    os.umask(0o027)
    made = [p for p in [layout.root, *layout.dirs(), layout.db, layout.config] if not os.path.lexists(p)]
    try:
        layout.ensure()
        settings.open_store(create=True).close()
        if not os.path.lexists(layout.config):
            fsio.atomic_write(layout.config, SAMPLE_CONFIG.encode())
    except BaseException:
        _undo(made, layout.db)  # a failed init leaves nothing behind: only what it created goes
        raise
    _out(f"spool ready at {layout.root}: drop audio into {layout.inbox}/ and run `spool run --root {layout.root}`")
    return 0


def _undo(made: list[Path], db: Path) -> None:
    for path in reversed(made):
        extra = [Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")] if path == db else []
        for p in [*extra, path]:
            with contextlib.suppress(OSError):
                os.rmdir(p) if p.is_dir() and not p.is_symlink() else os.unlink(p)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from processor.daemon import main_run

    assembly: Assembly = getattr(args, "assembly", Assembly())
    return main_run(settings, os.environ, once=args.once, scheduler_factory=assembly.scheduler)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(args, settings)
    data = status_data(settings, store)
    _json(data) if args.json else _out(views.status_text(data))
    return 0


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(args, settings)
    states = [JobState(s) for s in args.state] if args.state else []
    jobs = store.jobs(states)
    if args.limit:
        jobs = jobs[-args.limit :]
    _json([views.job_item(j) for j in jobs]) if args.json else _out(views.jobs_table(jobs))
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(args, settings)
    job = _find_job(store, args.job)
    detail = views.job_detail(job, store.read(ev.job_stream(job.id)))
    _json(detail) if args.json else _out(views.job_text(detail))
    return 0


def cmd_events(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(args, settings)
    stream = ev.job_stream(_find_job(store, args.job).id) if args.job else None
    records = store.read(stream) if stream else store.read_all(0)
    if args.limit:
        records = records[-args.limit :]
    for rec in records:
        _print_event(rec, args.json)
    if not args.follow:
        return 0
    sys.stdout.flush()  # the history at once, also into a pipe
    after = store.last_position()
    for rec in store.follow(after):  # until Ctrl-C: main() makes that exit 130, quietly
        if stream is None or rec.stream == stream:
            _print_event(rec, args.json)
            sys.stdout.flush()
    return 0


def _print_event(rec: Any, as_json: bool) -> None:
    from schema.mapper import to_jsonable

    if as_json:
        sys.stdout.write(names.json_safe(json.dumps(to_jsonable(rec), ensure_ascii=False)) + "\n")
    else:
        _out(views.event_line(rec))


def cmd_logs(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(args, settings)
    job = _find_job(store, args.job)
    path = settings.layout.job_log(job.id)
    if not path.exists() and not args.follow:
        raise SpoolError(f"job {job.id} has no log yet ({path})")
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    for line in lines[-args.n :] if args.n else lines:
        _out(line)
    if args.follow:
        return _follow_file(path, store, job.id)
    return 0


def _follow_file(path: Path, store: EventStore, job_id: str) -> int:
    offset = path.stat().st_size if path.exists() else 0
    stop = threading.Event()
    while not stop.is_set():  # until the job ends, or Ctrl-C (exit 130)
        if path.exists():
            size = path.stat().st_size
            if size < offset:  # rotated
                offset = 0
            if size > offset:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read(size - offset).decode("utf-8", "replace")
                    sys.stdout.write(names.printable(chunk, keep="\n\t"))
                    sys.stdout.flush()
                offset = size
        job = store.job(job_id)
        if job is not None and job.state.terminal:
            return 0
        stop.wait(0.3)
    return 0


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(args, settings)
    job = _find_job(store, args.job)
    if job.state.terminal:
        raise SpoolError(f"job {job.id} is already {job.state.value}; nothing to cancel")
    store.append(
        ev.job_stream(job.id), [ev.JobCancelRequested(by="cli")], idempotency_key=f"{job.id}:cancel:{job.version}"
    )
    name = views.display(job.source)
    _out(f"cancel requested for {job.id} ({name}); the daemon stops it and moves the input to failed/")
    return 0


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(args, settings)
    job = _find_job(store, args.job)
    if job.state not in (JobState.failed, JobState.cancelled):
        raise SpoolError(f"job {job.id} is {job.state.value}; only failed or cancelled jobs can be retried")
    if job.reason == "invalid_options":
        raise SpoolError(
            f"job {job.id} failed on its sidecar options; fix failed/{views.display(job.failed_path or '')}"
            ".options.json and drop the file and its sidecar (<name>.json) into the inbox again"
        )
    failed = settings.layout.failed / (job.failed_path or "")
    if not job.failed_path or not os.path.lexists(failed):
        raise SpoolError(f"the input of job {job.id} is no longer in failed/ ({failed}); drop it into the inbox again")
    from processor.models_cli import retry_options

    changed = retry_options(job, settings, args.keep_model)
    options, key = changed if changed else (None, None)
    store.append(
        ev.job_stream(job.id),
        [ev.JobRequeued(from_path=job.failed_path, by="cli", options=options, options_key=key)],
        idempotency_key=f"{job.id}:requeue:{job.version}",
    )
    model = f" with {options['engine']} {options['model']}" if options else ""
    _out(f"job {job.id} queued again{model}; the daemon moves it back from failed/")
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from schema.replay import verify

    store = _store(args, settings)
    report = verify(store)
    if args.json:
        _json(
            {
                "ok": report.ok,
                "events": report.events,
                "jobs": report.jobs,
                "missing": report.missing,
                "extra": report.extra,
                "differ": report.differ,
            }
        )
    else:
        for line in report.lines():
            _out(line)
    return 0 if report.ok else 1


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    layout = settings.layout
    store = args.closing.enter_context(contextlib.closing(settings.open_store(create=args.create, upgrade=True)))
    version, known = store.schema_version(), store.known_version()
    if settings.store:
        from schema.pg_store import redact

        where = redact(store.url)
    else:
        where = str(layout.db)
    _out(f"{where}: schema version {version} (this spoolscribe knows {known})")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from processor import models_cli

    return models_cli.cmd_models(args, settings, _out, _json)


SAMPLE_CONFIG = """\
# spoolscribe configuration. Precedence: command-line flag > SPOOL_<KEY> environment > this file.
# Every key and its default: see README.md, "Configuration".
# engine = "auto"          # auto | mlx | faster-whisper
# model = "tiny.en"        # bundled; or a name (small, large-v3-turbo, ...), a model directory, a Hub repo id
# device = "auto"          # auto | cpu | cuda | cuda:N
# workers = 1
# formats = ["txt", "srt", "vtt", "json"]
# settle_s = 2.0
# max_attempts = 3
#
# [profiles.interviews]    # options for files dropped into inbox/interviews/
# language = "en"
# word_timestamps = true
"""


# --- parser ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse whose complaints are one line and an exit code like every other error."""

    def error(self, message: str) -> NoReturn:
        raise cli_errors.UsageError(message, self.prog)


def _common(top: bool) -> _Parser:
    """The options every command takes.  On the top parser they have defaults; after the command they
    are SUPPRESSed unless given, so ``spool --root R status`` is not undone by the command's own copy."""
    common = _Parser(add_help=False)

    def d(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    common.add_argument("--root", default=d(None), help="spool directory (default: $SPOOL_ROOT or ./spool)")
    common.add_argument("--json", action="store_true", default=d(False), help="machine-readable output")
    common.add_argument("--store", metavar="URL", default=d(None), help=_key_help("store"))
    common.add_argument("--state-dir", dest="state_dir", metavar="DIR", default=d(None), help=_key_help("state_dir"))
    common.add_argument("--debug", action="store_true", default=d(False), help="print the traceback of an error")
    return common


def _parser(commands: Sequence[Callable[[Add], None]] = ()) -> argparse.ArgumentParser:
    p = _Parser(
        prog="spool",
        description="spoolscribe: drop audio into inbox/, get transcripts in outbox/",
        parents=[_common(top=True)],
    )
    common = _common(top=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def add(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help, description=help)
        sp.set_defaults(handler=handler)
        return sp

    add("init", cmd_init, "create a spool (folders, database, sample spool.toml)")
    run = add("run", cmd_run, "run the daemon on the spool")
    run.add_argument("--once", action="store_true", help="drain the inbox and the queue, then exit")
    for key in RUN_FLAGS:
        run.add_argument("--" + key.replace("_", "-"), dest=key, help=_key_help(key))
    submit = add("submit", cmd_submit, "hand files to the inbox and print their job ids")
    submit.add_argument("files", nargs="+")
    submit.add_argument("--wait", action="store_true", help="wait until each of these jobs is transcribed or failed")
    submit.add_argument("--timeout", type=seconds, default=3600.0, help="longest --wait, in seconds")
    add("status", cmd_status, "queue, running jobs with progress, firing alerts")
    jobs = add("jobs", cmd_jobs, "list jobs")
    jobs.add_argument("--state", action="append", choices=views.STATE_ORDER)
    jobs.add_argument("--limit", type=count, default=0, help="only the N most recent")
    show = add("show", cmd_show, "one job with its events")
    show.add_argument("job", help="job id or unique prefix")
    events = add("events", cmd_events, "the event log (of one job, or all)")
    events.add_argument("job", nargs="?")
    events.add_argument("--follow", "-f", action="store_true")
    events.add_argument("--limit", type=count, default=0)
    logs = add("logs", cmd_logs, "a job's worker log")
    logs.add_argument("job")
    logs.add_argument("-n", type=count, default=50, help="last N lines (0: all)")
    logs.add_argument("--follow", "-f", action="store_true")
    cancel = add("cancel", cmd_cancel, "stop a job; its input goes to failed/")
    cancel.add_argument("job")
    retry = add("retry", cmd_retry, "queue a failed or cancelled job again")
    retry.add_argument("job")
    retry.add_argument(
        "--keep-model", action="store_true", help="run with the engine and model it had (default: as configured now)"
    )
    replay = add("replay", cmd_replay, "rebuild the projection from the log and compare")
    replay.add_argument("--verify", action="store_true", required=True)
    mig = add("migrate", cmd_migrate, "bring the database schema up to date (backs up first)")
    mig.add_argument("--create", action="store_true", help="create the database if missing")
    from processor.models_cli import add_parsers

    add_parsers(lambda name, _handler, help: add(name, cmd_models, help))
    for register in commands:  # other packages' commands (ops: health, top, report), from the root
        register(add)
    return p


def _key_help(key: str) -> str:
    for f in config.fields():
        if f.name == key:
            return str(f.metadata.get("help", ""))
    return ""


RUN_FLAGS = (
    *("engine", "model", "workers", "settle_s", "max_attempts", "log_level", "threads", "lanes", "host"),
    *("lease_s", "batch_size"),
    # issue 13: every model, hardware, language and output-shape option
    *("device", "compute_type", "language", "task", "multilingual", "word_timestamps", "beam_size"),
    *("initial_prompt", "hotwords", "max_line_width", "max_line_count", "max_words_per_line", "highlight_words"),
    *("vad", "condition_on_previous_text"),  # long-form quality (issue 13)
)
FLAG_KEYS = ("root", "store", "state_dir", *RUN_FLAGS)


def main(argv: Sequence[str] | None = None, *, assembly: Assembly | None = None) -> int:
    """Parse, build settings, run one command; every way that can fail ends in :func:`cli_errors.report`."""
    words = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in words  # known before parsing, so even a parse failure can show its traceback
    try:
        assembly = assembly or Assembly()
        args = _parser(assembly.commands).parse_args(words)
        args.assembly = assembly
        flags = {k: getattr(args, k) for k in FLAG_KEYS if getattr(args, k, None) is not None}
        settings = config.load(flags, os.environ, checks=assembly.checks)
        with contextlib.ExitStack() as args.closing:  # what the command opened is closed, also on an error
            code = int(args.handler(args, settings))
        sys.stdout.flush()  # a closed pipe shows here, inside the discipline, not at interpreter exit
        return code
    except SystemExit as e:  # --help and friends: argparse printed to stdout and wants to exit
        return e.code if isinstance(e.code, int) else cli_errors.OK if e.code is None else cli_errors.BAD_CONFIG
    except KeyboardInterrupt:
        return cli_errors.INTERRUPTED
    except BrokenPipeError:
        cli_errors.quiet_stdout()
        return cli_errors.BROKEN_PIPE
    except Exception as e:  # noqa: BLE001 - the one place every error becomes one line and an exit code
        return cli_errors.report(e, debug=debug)


if __name__ == "__main__":  # processor's commands alone; `spool` (spoolscribe.main) adds ops'
    sys.exit(main())
