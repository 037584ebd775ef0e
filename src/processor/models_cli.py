"""``spool models`` and the retry's model choice: the command-line side of model resolution.

Kept out of :mod:`processor.cli` (which stays a thin parser): listing what
is installed or cached, installing a name, directory or repo for an engine
(offline from the Hugging Face cache when the weights are there, with a
download only where allowed), and deciding which engine and model a
``spool retry`` runs with.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ground.errors import SpoolError
from processor import options as opt
from processor.config import Settings
from processor.worker import models
from processor.worker.engines import resolve_engine
from schema.jobs import Job


def cmd_models(args: argparse.Namespace, settings: Settings, out: Any, as_json: Any) -> int:
    """List, or install: ``spool models install NAME|DIR|REPO [--engine E]`` (default: the configured engine)."""
    layout = settings.layout
    engine = resolve_engine(args.engine or settings.engine)
    if args.action == "install":
        if not args.name:
            raise SpoolError("`spool models install` needs a model name, directory or Hub repo id")
        if engine not in ("mlx", "faster-whisper"):
            raise SpoolError(f"`spool models install` is for the mlx or faster-whisper engine, not {engine!r}")
        info = models.resolve(args.name, layout.models, env=os.environ, download=True)
        models.check_dir(info)
        layout.models.mkdir(parents=True, exist_ok=True, mode=0o750)
        path = models.install(info, layout.models, engine=engine)
        found = {"hf_cache": "from the Hugging Face cache", "download": "downloaded"}.get(info.origin, info.origin)
        out(f"installed {info.name} for {engine} ({found}): {path}")
        return 0
    listed = models.installed(layout.models, os.environ)
    if args.json:
        as_json([m.to_dict() for m in listed])
    else:
        for m in listed:
            langs = {True: "multilingual", False: "English-only", None: "?"}[m.multilingual]
            out(f"{m.name:30} {m.format:5} {m.origin:10} {langs:12} {m.path}")
    return 0


def retry_options(job: Job, settings: Settings, keep_model: bool) -> tuple[dict[str, Any], str] | None:
    """The job's options for a retry with the engine and model configured now; None when unchanged.

    The sidecar's own options (language, prompt, shape...) are the job's
    request and stay; engine and model are the operator's and come from the
    current configuration (its folder profile, else the defaults), unless
    ``keep_model``.
    """
    if keep_model:
        return None
    _, profile = opt.profile_for(job.source, settings.profiles)
    merged = {**settings.job_defaults, **profile}
    engine, model = resolve_engine(str(merged["engine"])), str(merged["model"])
    if (job.options.get("engine"), job.options.get("model")) == (engine, model):
        return None
    options = {**job.options, "engine": engine, "model": model}
    return options, opt.options_key(options)


def add_parsers(add: Any) -> None:
    """``spool models`` with its arguments."""
    mdl = add("models", None, "list or install models (offline default: tiny.en; names such as small, large-v3)")
    mdl.add_argument("action", nargs="?", choices=["list", "install"], default="list")
    mdl.add_argument("name", nargs="?", help="a model name (tiny, small.en, large-v3-turbo...), directory or repo id")
    mdl.add_argument(
        "--engine",
        choices=["mlx", "faster-whisper"],
        default=None,
        help="install for this engine (default: as configured)",
    )
