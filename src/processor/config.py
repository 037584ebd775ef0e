"""One immutable settings object, built once at the entry point.

Precedence: command-line flag > environment (``SPOOL_<KEY>``) > ``spool.toml``
in the spool root (or ``$SPOOL_CONFIG``) > defaults.  The defaults need no
infrastructure: SQLite in ``state/``, the bundled tiny.en model, no network.

Every value from every source is checked when the settings are built, by the
one path in :mod:`processor.config_check` that reads each field's type and
metadata (``_f``); every problem is a :class:`ConfigError` naming the key,
the source (``$SPOOL_SETTLE_S``, ``spool.toml:12``, ``--settle-s``) and what
is allowed.  A bad value never gets past the start.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground.errors import ConfigError
from processor import config_check as cc
from processor import config_sources as sources
from processor import languages
from processor import options as opt
from processor.worker import hardware
from schema.store import EventStore, open_store
from spool.layout import Layout

ENV_PREFIX = sources.ENV_PREFIX
MAX_DAYS = 36500  # a century: more overflows date arithmetic


def _f(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    check: Callable[[str, Any], None] | None = None,
    auto: bool = False,
) -> Any:
    """A setting: its default, its help, and what config_check enforces beyond its type.

    ``choices`` apply to each item of a list; ``check(key, value)`` raises
    :class:`ConfigError` for what the other rules cannot say; ``auto``: the
    word ``auto`` is accepted for 0 (a number the daemon works out itself).
    """
    meta = {"help": help, "choices": choices, "min": minimum, "max": maximum, "check": check, "auto": auto}
    if isinstance(default, (list, dict)):
        copy: Any = default.copy
        return field(default_factory=copy, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    root: Path = _f(Path("spool"), "the spool directory (inbox/, outbox/, ...)")
    store: str = _f(
        "", "event store: empty for SQLite in the state directory, or postgresql://... for a fleet", check=cc.store_url
    )
    state_dir: str = _f("", "where this daemon keeps its lock, SQLite file and reports (default: <root>/state)")
    host: str = _f("", "this host's name in a fleet (default: the machine's host name)")
    lease_s: float = _f(
        30.0, "a fleet daemon's lease: its jobs move elsewhere this long after it stops renewing", minimum=1
    )
    engine: str = _f("auto", "transcription engine", choices=("auto", "mlx", "faster-whisper", "test"))
    model: str = _f("tiny.en", "model name (`spool models`), local model directory, or Hub repo id")
    workers: int = _f(
        0,
        "jobs transcribed at the same time, one warm worker process each (0 or auto: from cores, memory and "
        "engine: one per core for faster-whisper on a CPU, else one)",
        minimum=0,
        maximum=256,
        auto=True,
    )
    threads: int = _f(
        0, "engine CPU threads per worker (0 or auto: all cores / workers)", minimum=0, maximum=1024, auto=True
    )
    lanes: int = _f(
        0,
        "most windows of one long file a worker decodes at once while other workers are idle "
        "(0 or auto: workers, for faster-whisper on a CPU; 1: off)",
        minimum=0,
        maximum=256,
        auto=True,
    )
    batch_size: int = _f(
        0,
        "30 s pieces of speech faster-whisper decodes in one batch (0 or auto: 8, 4 for medium and large "
        "models on a CPU; 1: one by one)",
        minimum=0,
        maximum=64,
        auto=True,
    )
    formats: list[str] = _f(
        ["txt", "srt", "vtt", "json"], "output formats (txt srt vtt tsv json)", choices=opt.FORMATS, check=cc.not_empty
    )
    language: str = _f(
        "", "spoken language: a Whisper code (en, de, ...), or auto / empty to detect (English-only models: en)"
    )
    task: str = _f("transcribe", "transcribe, or translate to English", choices=("transcribe", "translate"))
    word_timestamps: bool = _f(True, "word-level timing in json and subtitles")
    beam_size: int = _f(1, "beam search width (1: greedy; mlx supports greedy only)", minimum=1, maximum=10)
    # --- issue 13: models, hardware, language detection, shaped output (one block) -------------
    device: str = _f(
        "auto",
        "auto (CUDA if CTranslate2 sees one, Metal for mlx on Apple silicon, else CPU), cpu, cuda, cuda:N",
        check=cc.device,
    )
    compute_type: str = _f(
        "auto",
        "auto (float16 on a GPU, int8 on a CPU for faster-whisper, float32 for mlx on a CPU)",
        choices=hardware.COMPUTE_TYPES,
    )
    multilingual: bool = _f(
        False, "detect the language of every window, for mixed-language recordings (faster-whisper)"
    )
    initial_prompt: str = _f("", "text the model reads before the first window: names, spelling, style")
    hotwords: str = _f("", "words to favour while decoding (faster-whisper; mlx: put before the prompt)")
    max_line_width: int = _f(
        0,
        "longest subtitle line in characters (0: as the segment is; needs word_timestamps)",
        minimum=0,
        maximum=opt.SHAPE_LIMITS["max_line_width"],
    )
    max_line_count: int = _f(
        0,
        "lines per subtitle (0: no limit; needs max_line_width)",
        minimum=0,
        maximum=opt.SHAPE_LIMITS["max_line_count"],
    )
    max_words_per_line: int = _f(
        0,
        "words per subtitle line (0: no limit; not with max_line_width)",
        minimum=0,
        maximum=opt.SHAPE_LIMITS["max_words_per_line"],
    )
    highlight_words: bool = _f(False, "underline each word as it is spoken in srt and vtt (needs word_timestamps)")
    # --- end of the issue 13 block ---------------------------------------------------------------
    # --- long-form quality (issue 13 items 1-2; docs/quality.md has the measurements) ---
    vad: bool = _f(True, "transcribe only what Silero voice-activity detection calls speech (no text from silence)")
    condition_on_previous_text: bool = _f(
        False, "prompt each stretch with the text before it (off: a loop or a lost thread cannot spread)"
    )
    # --- end long-form quality ---
    settle_s: float = _f(2.0, "a file written in place counts once unchanged this long", minimum=0)
    trust_mtime: bool = _f(
        True, "take files whose mtime is older than settle_s at once (off on shares with skewed clocks)"
    )
    recent_s: float = _f(
        30.0,
        "an input written this recently that looks incomplete is looked at again before "
        "it is quarantined (writers that pause)",
        minimum=0,
    )
    rescan_s: float = _f(60.0, "full inbox scan period (the watcher is only a hint)", minimum=0.1)
    force_polling: bool = _f(False, "poll the inbox instead of using change notifications (network shares)")
    watch: bool = _f(True, "use a watcher at all; off: rely on rescans every rescan_s (filesystems without events)")
    max_attempts: int = _f(3, "attempts before an input goes to failed/", minimum=1)
    retry_backoff_s: float = _f(5.0, "delay before the 2nd attempt; doubles each time", minimum=0)
    retry_backoff_max_s: float = _f(300.0, "longest delay between attempts", minimum=0)
    heartbeat_s: float = _f(5.0, "job.heartbeat period while a job runs", minimum=0.05)
    progress_s: float = _f(2.0, "shortest time between two job.progress events", minimum=0)
    stall_s: float = _f(120.0, "a running job with no progress this long is hung and killed", minimum=0.1)
    timeout_base_s: float = _f(300.0, "hard timeout: this plus timeout_factor x audio duration", minimum=1)
    timeout_factor: float = _f(3.0, "hard timeout per second of audio", minimum=0)
    grace_s: float = _f(5.0, "time between SIGTERM and SIGKILL when stopping a worker", minimum=0)
    worker_start_timeout_s: float = _f(120.0, "longest a worker may take to load its model", minimum=1)
    probe_timeout_s: float = _f(60.0, "longest a worker may take to hash and probe an input", minimum=1)
    max_jobs_per_worker: int = _f(200, "recycle a warm worker after this many jobs", minimum=1)
    worker_rss_limit_mb: int = _f(
        4096, "recycle a warm worker above this resident size; a job passing it is killed (memory_limit)", minimum=64
    )
    done_policy: str = _f("keep", "what happens to an input after success", choices=("keep", "delete"))
    duplicates: str = _f("reuse", "same content + options as a finished job", choices=("reuse", "rerun"))
    log_max_bytes: int = _f(1_048_576, "per-job log size before rotation", minimum=1024)
    log_backups: int = _f(3, "rotated pieces kept per job log (.1 .2 ...)", minimum=0)
    log_level: str = _f("info", "daemon log level", choices=("debug", "info", "warning", "error"))
    free_disk_floor_mb: int = _f(500, "pause intake while the spool's disk has less free space", minimum=0)
    profiles: dict[str, dict[str, Any]] = _f({}, "per-subfolder job options: [profiles.<folder>]")
    sweep_s: float = _f(30.0, "orphan sweep period (also once at start)", minimum=0.1)
    metrics_s: float = _f(60.0, "metrics -> alerts evaluation period", minimum=0.1)
    report_s: float = _f(3600.0, "health report period", minimum=0.1)
    retention_s: float = _f(3600.0, "log retention period", minimum=0.1)
    compaction_s: float = _f(86400.0, "heartbeat compaction period", minimum=0.1)
    backup_s: float = _f(86400.0, "database backup period", minimum=0.1)
    log_max_age_days: float = _f(14.0, "per-job logs older than this are deleted", minimum=0, maximum=MAX_DAYS)
    log_total_max_mb: float = _f(1024.0, "per-job logs beyond this total are deleted, oldest first", minimum=0)
    heartbeat_keep_days: float = _f(
        7.0, "heartbeats of jobs finished longer ago are compacted", minimum=0, maximum=MAX_DAYS
    )
    backups_keep: int = _f(7, "scheduled database backups kept", minimum=1)
    reports_keep: int = _f(168, "health reports kept (plus latest.json)", minimum=1)
    metrics_window_s: float = _f(3600.0, "window of the windowed metrics (orphans, errors, throughput)", minimum=1)
    stuck_after_s: float = _f(60.0, "a running job without progress this long counts as stuck", minimum=0.1)
    metrics_port: int = _f(0, "serve Prometheus /metrics on this port (0: off)", minimum=0, maximum=65535)
    metrics_addr: str = _f("127.0.0.1", "address the /metrics endpoint binds to", check=cc.bind_address)
    metrics_textfile: str = _f("", "also write the metrics to this file (node_exporter textfile collector)")
    alerts: dict[str, dict[str, Any]] = _f({}, "alert rules added or overridden: [alerts.<name>]")
    notify: dict[str, Any] = _f({}, "notification targets: [[notify.webhooks]], [[notify.commands]]")

    # --- the web face (`spool web`, package web/; checked by web.settings.check_web through load(checks=)) ---
    web_listen: str = _f("127.0.0.1:8790", "address:port `spool web` listens on (not loopback: a token is required)")
    web_token: str = _f("", "Bearer token every web request must carry (prefer $SPOOL_WEB_TOKEN or web_token_file)")
    web_token_file: str = _f("", "file holding the web token (first line); used when web_token is empty")
    web_max_upload_mb: int = _f(2048, "largest upload `spool web` accepts, in MiB", minimum=1, maximum=1 << 20)
    web_sync_timeout_s: float = _f(
        3600.0, "longest a synchronous web request (/v1/audio/transcriptions, /asr) waits for its job", minimum=1
    )

    def __post_init__(self) -> None:
        cc.check_settings(self)  # every field, the job defaults, [profiles]; [alerts] [notify]: load(checks=)

    @property
    def layout(self) -> Layout:
        return Layout(self.root, Path(self.state_dir).absolute() if self.state_dir else None)

    def open_store(self, *, create: bool = False, upgrade: bool | None = None) -> EventStore:
        """SQLite in the state directory, or the PostgreSQL database named by ``store``.

        PostgreSQL: only ``create`` (an empty schema) or ``upgrade`` (an older one) change the
        schema; every other command only reads and appends, so a read-only role can run it.
        """
        layout = self.layout
        # a frozen host's open transaction must not stall the fleet for as long as a lease
        idle = min(5.0, max(0.5, self.lease_s / 4))
        return open_store(
            self.store, layout.db, create=create, upgrade=upgrade, backup_dir=layout.backups, idle_timeout_s=idle
        )

    @property
    def fleet_settings(self) -> dict[str, Any]:
        """What decides a job's result or its files' fate: fleet-wide, checked when a daemon joins.

        A host's own concerns (workers, threads, lanes, ports, periods, its state directory) may differ.
        """
        return {
            **self.job_defaults,
            "profiles": self.profiles,
            "duplicates": self.duplicates,
            "done_policy": self.done_policy,
            "max_attempts": self.max_attempts,
        }

    @property
    def job_defaults(self) -> dict[str, Any]:
        """The job options every job starts from, before its profile and sidecar."""
        return {
            "engine": self.engine,
            "model": self.model,
            "formats": list(self.formats),
            "language": languages.normalise(self.language),
            "task": self.task,
            "word_timestamps": self.word_timestamps,
            "beam_size": self.beam_size,
            "initial_prompt": self.initial_prompt or None,
            "hotwords": self.hotwords or None,
            "multilingual": self.multilingual,
            "max_line_width": self.max_line_width or None,
            "max_line_count": self.max_line_count or None,
            "max_words_per_line": self.max_words_per_line or None,
            "highlight_words": self.highlight_words,
            "vad": self.vad,
            "condition_on_previous_text": self.condition_on_previous_text,
        }


def fields() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(Settings))


def load(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    checks: Sequence[Callable[[Settings], None]] = (),
) -> Settings:
    """Build settings from flags > env > spool.toml (or ``$SPOOL_CONFIG``) > defaults.

    Every value of every source is checked, not only the winning one: a bad
    line in spool.toml hidden today by an environment variable would stop the
    daemon the day that variable goes.  ``env`` is passed in (the entry point
    hands ``os.environ``) so tests never mutate the process environment.
    """
    table = {f.name: f for f in fields()}
    flag_values = sources.from_flags(flags or {})
    for name in flag_values:
        if name not in table:
            raise ConfigError(name, "unknown setting", ", ".join(sorted(table)))
    env_values = sources.from_env(env or {}, list(table))
    file = _config_file(flag_values, env_values, env or {}, config_file)
    file_values = file.given()
    for name, given in file_values.items():
        if name not in table:
            close = difflib.get_close_matches(name, list(table), n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else "README.md, Configuration, lists every key"
            raise ConfigError(name, f"unknown key; {hint}", source=given.source)
    chosen: dict[str, sources.Given] = {}
    values: dict[str, Any] = {}
    for layer in (file_values, env_values, flag_values):  # lowest precedence first: the last one wins
        for name, given in layer.items():
            chosen[name], values[name] = given, _value(table[name], given)
    values["root"] = values.get("root", Path("spool")).absolute()  # watcher events carry absolute paths
    try:
        settings = Settings(**values)
        for check in checks:  # the sections other packages own ([alerts], [notify]: ops), handed in by the root
            check(settings)
        return settings
    except ConfigError as e:  # a rule spanning fields, or inside a section: name where the key was set
        top = e.key.split(".")[0].split("[")[0]
        winner = chosen.get(top)
        if winner is None:
            raise
        raise e.at(file.label(e.key) if file_values.get(top) is winner else winner.source) from None


def _value(f: dataclasses.Field[Any], given: sources.Given) -> Any:
    """One value through the one path: the field's type, then its rules; errors name the source."""
    value = cc.coerce(f, given)
    try:
        cc.check_field(f, value)
    except ConfigError as e:
        raise e.at(given.source) from None
    return value


def _config_file(
    flags: dict[str, sources.Given], env: dict[str, sources.Given], raw_env: Mapping[str, str], explicit: Path | None
) -> sources.ConfigFile:
    """The file in use: ``config_file``, else ``$SPOOL_CONFIG`` (which must exist), else ``<root>/spool.toml``.

    ``root`` may be set in a file named by ``$SPOOL_CONFIG`` (it does not live
    in the spool), never in the spool's own spool.toml.
    """
    named = explicit or (Path(raw_env[sources.CONFIG_ENV]) if raw_env.get(sources.CONFIG_ENV) else None)
    if named is not None:
        label = None if explicit else f"${sources.CONFIG_ENV}"
        return sources.read(named, required=True, named_by=label)
    given = flags.get("root") or env.get("root")
    root = _value(Settings.__dataclass_fields__["root"], given) if given else Path("spool")
    file = sources.read(Path(root).absolute() / "spool.toml", required=False)
    if "root" in file.values:
        raise ConfigError(
            "root", "cannot be set in the spool's own spool.toml (use --root or $SPOOL_ROOT)", source=file.label("root")
        )
    return file
