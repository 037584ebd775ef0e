"""Before the daemon touches an input: every model it may run is on disk, readable, on real hardware.

A model that cannot load used to be found per job: three ``worker.load_failed``,
then the input quarantined as ``engine_unavailable``, for every file dropped
until someone noticed.  Now the configured model - and each model a folder
profile picks - is resolved (fetched once where the network and
``HF_HUB_OFFLINE`` allow), its files checked, the device chosen and the
configured language and task checked against what the model can do.  Any
failure is one line and exit 2; the inbox is left as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ground.errors import SpoolError
from processor import languages
from processor.config import Settings
from processor.worker import hardware, models
from processor.worker.engines import resolve_engine


class NotReady(SpoolError):
    """The configuration names a model, device or request this machine cannot serve."""

    exit_code = 2  # bad configuration (processor/cli_errors.py)


@dataclass(frozen=True)
class Checked:
    """One (engine, model) the daemon may run, as resolved."""

    engine: str
    model: str
    info: models.ModelInfo
    hardware: hardware.Hardware


def uses(settings: Settings) -> list[tuple[str, str, str, dict[str, Any]]]:
    """``(where, engine, model, options)``: the defaults, then every profile over them."""
    defaults = settings.job_defaults
    out = [("config", resolve_engine(settings.engine), settings.model, defaults)]
    for folder, prof in sorted(settings.profiles.items()):
        merged = {**defaults, **prof}
        out.append((f"profile {folder!r}", resolve_engine(str(merged["engine"])), str(merged["model"]), merged))
    return out


def check(settings: Settings, env: Mapping[str, str], *, download: bool = True) -> list[Checked]:
    """Resolve and validate everything the configuration may run; :class:`NotReady` names what cannot."""
    done: dict[tuple[str, str], Checked] = {}
    machines: dict[str, hardware.Machine] = {}
    for where, engine, model, options in uses(settings):
        if engine == "test":
            continue
        key = (engine, model)
        if key not in done:
            if engine not in machines:
                machines[engine] = hardware.probe(engine)
            done[key] = _one(settings, env, engine, model, machines[engine], download)
        refused = languages.unsupported(options, model, done[key].info.multilingual)
        if refused is not None:
            raise NotReady(f"{where}: {refused[1]}")
    return list(done.values())


def _one(
    settings: Settings, env: Mapping[str, str], engine: str, model: str, machine: hardware.Machine, download: bool
) -> Checked:
    try:
        info = models.resolve(model, settings.layout.models, engine=engine, env=env, download=download)
        models.check_dir(info)
        if engine == "faster-whisper" and info.format != "ct2":
            raise models.ModelError(f"{model} is an MLX model; faster-whisper needs a CTranslate2 model")
    except models.ModelError as e:
        raise NotReady(f"{engine} cannot use model {model!r}: {e}") from None
    try:
        hw = hardware.select(engine, settings.device, settings.compute_type, machine)
    except hardware.HardwareError as e:
        raise NotReady(f"config device / compute_type ({engine}): {e}") from None
    return Checked(engine, model, info, hw)


def describe(checked: Checked) -> dict[str, Any]:
    """A resolved model as the daemon log records it: where it was found, what it can do, where it runs."""
    info = checked.info
    return {
        "engine": checked.engine,
        "model": checked.model,
        "path": info.path,
        "origin": info.origin,
        "format": info.format,
        "multilingual": info.multilingual,
        "device": checked.hardware.label,
        "compute_type": checked.hardware.compute_type,
    }
