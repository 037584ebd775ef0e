"""One immutable settings object, built once at the entry point.

Precedence: command-line flag > environment (``SPOOL_<KEY>``) > ``spool.toml``
in the spool root > defaults.  The defaults need no infrastructure: SQLite
in ``state/``, the bundled tiny.en model, no network.  Every problem is a
:class:`ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processor import options as opt
from schema.errors import ConfigError
from schema.store import EventStore, open_store
from spool.layout import Layout

ENV_PREFIX = "SPOOL_"


def _f(default: Any, help: str, *, choices: tuple[str, ...] = (), minimum: float | None = None) -> Any:
    meta = {"help": help, "choices": choices, "min": minimum}
    if isinstance(default, (list, dict)):
        copy: Any = default.copy
        return field(default_factory=copy, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    root: Path = _f(Path("spool"), "the spool directory (inbox/, outbox/, ...)")
    store: str = _f("", "event store: empty for SQLite in the state directory, or postgresql://... for a fleet")
    state_dir: str = _f("", "where this daemon keeps its lock, SQLite file and reports (default: <root>/state)")
    host: str = _f("", "this host's name in a fleet (default: the machine's host name)")
    lease_s: float = _f(
        30.0, "a fleet daemon's lease: its jobs move elsewhere this long after it stops renewing", minimum=1
    )
    engine: str = _f("auto", "transcription engine", choices=("auto", "mlx", "faster-whisper", "test"))
    model: str = _f("tiny.en", "model name (`spool models`), local model directory, or Hub repo id")
    workers: int = _f(1, "jobs transcribed at the same time (one warm worker process each)", minimum=1)
    threads: int = _f(0, "engine CPU threads per worker (0: all cores / workers)", minimum=0)
    formats: list[str] = _f(["txt", "srt", "vtt", "json"], "output formats (txt srt vtt tsv json)")
    language: str = _f("", "spoken language code; empty: detect (English-only models: en)")
    task: str = _f("transcribe", "transcribe, or translate to English", choices=("transcribe", "translate"))
    word_timestamps: bool = _f(True, "word-level timing in json and subtitles")
    beam_size: int = _f(1, "beam search width (1: greedy; mlx supports greedy only)", minimum=1)
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
    log_max_age_days: float = _f(14.0, "per-job logs older than this are deleted", minimum=0)
    log_total_max_mb: float = _f(1024.0, "per-job logs beyond this total are deleted, oldest first", minimum=0)
    heartbeat_keep_days: float = _f(7.0, "heartbeats of jobs finished longer ago are compacted", minimum=0)
    backups_keep: int = _f(7, "scheduled database backups kept", minimum=1)
    reports_keep: int = _f(168, "health reports kept (plus latest.json)", minimum=1)
    metrics_window_s: float = _f(3600.0, "window of the windowed metrics (orphans, errors, throughput)", minimum=1)
    stuck_after_s: float = _f(60.0, "a running job without progress this long counts as stuck", minimum=0.1)
    metrics_port: int = _f(0, "serve Prometheus /metrics on this port (0: off)", minimum=0)
    metrics_addr: str = _f("127.0.0.1", "address the /metrics endpoint binds to")
    metrics_textfile: str = _f("", "also write the metrics to this file (node_exporter textfile collector)")
    alerts: dict[str, dict[str, Any]] = _f({}, "alert rules added or overridden: [alerts.<name>]")
    notify: dict[str, Any] = _f({}, "notification targets: [[notify.webhooks]], [[notify.commands]]")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _validate(f, getattr(self, f.name))
        for fmt in self.formats:
            if fmt not in opt.FORMATS:
                raise ConfigError("formats", f"unknown format {fmt!r}", ", ".join(opt.FORMATS))
        if not self.formats:
            raise ConfigError("formats", "must name at least one format", ", ".join(opt.FORMATS))
        for folder, prof in self.profiles.items():
            opt.validate(prof, source=f"profiles.{folder}", allow_operator_keys=True)

    @property
    def layout(self) -> Layout:
        return Layout(self.root, Path(self.state_dir).absolute() if self.state_dir else None)

    def open_store(self, *, create: bool = False) -> EventStore:
        """SQLite in the state directory, or the PostgreSQL database named by ``store``."""
        layout = self.layout
        # a frozen host's open transaction must not stall the fleet for as long as a lease
        idle = min(5.0, max(0.5, self.lease_s / 4))
        return open_store(self.store, layout.db, create=create, backup_dir=layout.backups, idle_timeout_s=idle)

    @property
    def job_defaults(self) -> dict[str, Any]:
        """The job options every job starts from, before its profile and sidecar."""
        return {
            "engine": self.engine,
            "model": self.model,
            "formats": list(self.formats),
            "language": self.language or None,
            "task": self.task,
            "word_timestamps": self.word_timestamps,
            "beam_size": self.beam_size,
            "initial_prompt": None,
        }


def _validate(f: dataclasses.Field[Any], value: Any) -> None:
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f.name, f"{value!r} is not allowed", ", ".join(choices))
    minimum = f.metadata.get("min")
    if minimum is not None and isinstance(value, (int, float)) and value < minimum:
        raise ConfigError(f.name, f"{value!r} is below the minimum", f">= {minimum}")


def fields() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(Settings))


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _to_number(kind: type) -> Any:
    def convert(raw: Any) -> Any:
        if isinstance(raw, bool):
            raise ValueError(raw)
        return kind(raw)

    return convert


def _to_list(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [p.strip() for p in raw.replace(",", " ").split() if p.strip()]
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return list(raw)
    raise ValueError(raw)


def _to_dict(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    raise ValueError(raw)


def _to_str(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    raise ValueError(raw)


_CONVERTERS = {
    "bool": _to_bool,
    "int": _to_number(int),
    "float": _to_number(float),
    "Path": lambda raw: Path(os.path.expanduser(str(raw))),
    "list": _to_list,
    "dict": _to_dict,
    "str": _to_str,
}


def _coerce(name: str, kind: Any, raw: Any, origin: str) -> Any:
    """Turn a TOML or environment value into the field's type, or say why not."""
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    convert = _CONVERTERS[kind_name.split("[")[0]]
    try:
        return convert(raw)
    except (TypeError, ValueError):
        raise ConfigError(name, f"{raw!r} from {origin} is not a valid {kind_name}") from None


def load(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build settings from flags > env > spool.toml > defaults.

    ``env`` is passed in (the entry point hands ``os.environ``) so tests never
    mutate the process environment.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = env or {}
    types = {f.name: f.type for f in fields()}
    root_raw = flags.get("root") or env.get(ENV_PREFIX + "ROOT") or "spool"
    root = _coerce("root", "Path", root_raw, "flag/env")
    path = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else root / "spool.toml")
    values: dict[str, Any] = {}
    for name, raw in _read_toml(path).items():
        if name not in types:
            raise ConfigError(name, f"unknown key in {path}", ", ".join(sorted(types)))
        values[name] = _coerce(name, types[name], raw, str(path))
    for name in types:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and name not in ("profiles", "alerts", "notify"):
            values[name] = _coerce(name, types[name], raw, f"${ENV_PREFIX}{name.upper()}")
    for name, raw in flags.items():
        if name not in types:
            raise ConfigError(name, "unknown setting", ", ".join(sorted(types)))
        values[name] = _coerce(name, types[name], raw, "the command line")
    values["root"] = root.absolute()  # watcher events carry absolute paths
    return Settings(**values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), f"is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(str(path), f"cannot be read: {e.strerror}") from None
    return data
