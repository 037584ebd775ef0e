"""An OpsContext over a real spool and store, with a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ops.context import OpsContext
from processor import config, logs
from processor.clock import FakeClock
from schema.sqlite_store import SQLiteEventStore
from spool.layout import Layout

MakeCtx = Callable[..., OpsContext]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_ctx(tmp_path: Path, clock: FakeClock) -> Iterator[MakeCtx]:
    stores: list[SQLiteEventStore] = []

    def make(**settings: object) -> OpsContext:
        layout = Layout(tmp_path / "spool")
        layout.ensure()
        s = config.load({"root": str(layout.root)}, {k: str(v) for k, v in settings.items() if k.isupper()})
        if any(not k.isupper() for k in settings):
            import dataclasses

            s = dataclasses.replace(s, **{k: v for k, v in settings.items() if not k.isupper()})
        store = SQLiteEventStore(layout.db, create=True, clock=clock.wall)
        stores.append(store)
        return OpsContext(store=store, layout=layout, settings=s, now=clock.wall, log=logs.get("ops"))

    yield make
    for s in stores:
        s.close()
