"""Sharing one host's cores: dispatch order within a batch, lanes, and the auto layout (pure rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from processor import sharing, sizing

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass(frozen=True)
class J:
    id: str
    submitted_at: str
    size: int
    duration_s: float | None = None
    checkpoint_s: float = 0.0


def at(s: float) -> str:
    return (T0 + timedelta(seconds=s)).isoformat()


jobs = st.lists(
    st.builds(
        J,
        id=st.uuids().map(str),
        submitted_at=st.floats(0, 600).map(at),
        size=st.integers(0, 10**9),
        duration_s=st.none() | st.floats(0.1, 36000),
    ),
    max_size=40,
    unique_by=lambda j: j.id,
)


@given(jobs)
def test_dispatch_order_is_a_permutation_largest_first_within_the_oldest_batch(batch: list[J]) -> None:
    order = sharing.dispatch_order(batch)
    assert sorted(j.id for j in order) == sorted(j.id for j in batch)
    if not batch:
        return
    head = min(datetime.fromisoformat(j.submitted_at) for j in batch)
    first = [j for j in order if (datetime.fromisoformat(j.submitted_at) - head).total_seconds() <= sharing.BATCH_S]
    assert order[: len(first)] == first  # the oldest batch comes first, whole
    sizes = [sharing.remaining(j) for j in first]
    assert sizes == sorted(sizes, reverse=True)
    later = order[len(first) :]
    assert [j.submitted_at for j in later] == sorted(j.submitted_at for j in later)  # then oldest first


def test_a_long_file_dropped_with_short_ones_goes_first_and_a_later_one_waits_its_turn() -> None:
    shorts = [J(f"s{i}", at(i), 300_000) for i in range(5)]
    long = J("long", at(6), 12_000_000)
    late_big = J("late", at(200), 90_000_000)
    assert [j.id for j in sharing.dispatch_order([*shorts, late_big, long])][:2] == ["long", "s0"]
    assert sharing.dispatch_order([*shorts, late_big, long])[-1].id == "late"


@given(
    st.integers(-2, 8),
    st.dictionaries(st.text(min_size=1, max_size=3), st.none() | st.floats(0, 36000), max_size=6),
    st.integers(1, 8),
)
def test_lanes_lend_only_spare_slots_never_past_most_nor_below_the_minimum(
    spare: int, left: dict[str, float | None], most: int
) -> None:
    shares = sharing.share_lanes(spare, left, most)
    assert set(shares) == set(left)
    assert all(1 <= n <= most for n in shares.values())
    assert sum(shares.values()) - len(left) <= max(0, spare)
    for job, n in shares.items():
        if n > 1:
            assert left[job] is not None and left[job] / n >= sharing.LANE_MIN_S


def test_a_free_slot_goes_to_the_job_with_the_most_audio_left() -> None:
    assert sharing.share_lanes(1, {"a": 400.0, "b": 90.0}, 2) == {"a": 2, "b": 1}
    assert sharing.share_lanes(0, {"a": 400.0}, 2) == {"a": 1}  # a job waits: nothing to lend
    assert sharing.share_lanes(1, {"a": 40.0}, 2) == {"a": 1}  # too little left to split
    assert sharing.share_lanes(1, {"a": None}, 2) == {"a": 1}  # not probed yet


def test_auto_layout_follows_the_engine_the_device_and_memory() -> None:
    cpu = sizing.size(engine="faster-whisper", device="cpu", cores=2, free_mb=20_000, model="tiny.en")
    assert (cpu.workers, cpu.threads, cpu.lanes) == (2, 1, 2)
    big = sizing.size(engine="faster-whisper", device="cpu", cores=16, free_mb=16_000, model="large-v3")
    assert (big.workers, big.threads, big.lanes) == (2, 8, 2) and "MB free" in big.why
    wide = sizing.size(engine="faster-whisper", device="cpu", cores=16, free_mb=200_000, model="large-v3")
    assert (wide.workers, wide.threads, wide.lanes) == (16, 1, 2)  # lanes of a large model: at most 2
    gpu = sizing.size(engine="faster-whisper", device="cuda", cores=16, free_mb=64_000, model="large-v3")
    assert (gpu.workers, gpu.threads, gpu.lanes) == (1, 16, 1)
    mlx = sizing.size(engine="mlx", device="cpu", cores=8, free_mb=64_000, model="tiny.en")
    assert (mlx.workers, mlx.lanes) == (1, 1)
    given_ = sizing.size(engine="faster-whisper", device="cpu", cores=2, free_mb=9, model="x", workers=1, threads=2)
    assert (given_.workers, given_.threads, given_.lanes) == (1, 2, 1)
    off = sizing.size(engine="faster-whisper", device="cpu", cores=4, free_mb=99_000, model="tiny", lanes=1)
    assert (off.workers, off.lanes) == (4, 1)
    assert sizing.size(engine="test", device="cpu", cores=8, free_mb=1, model="m").workers == 1
    assert sizing.worker_mb("deepdml/faster-whisper-large-v3-turbo-ct2") == sizing.WORKER_MB["turbo"]
    assert (cpu.batch, big.batch, gpu.batch, mlx.batch) == (8, 4, 8, 1)  # large batches weigh more on a CPU
    one = sizing.size(engine="faster-whisper", device="cpu", cores=2, free_mb=9_000, model="tiny", batch=1)
    assert one.batch == 1
