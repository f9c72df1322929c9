"""Reading a run's TensorBoard scalars the way TensorBoard shows them (purged events of a resumed run hidden)."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

# Wall-clock measurements differ between any two runs; everything else a seeded run writes is reproducible.
WALL_CLOCK_MARKS = ("steps_per_s", "seconds", "time")


def is_wall_clock(tag: str) -> bool:
    return any(mark in tag for mark in WALL_CLOCK_MARKS)


def tensorboard_scalars(run_dir: Path, include_wall_clock: bool = False) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} in the order written, every event kept (no sampling)."""
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={SCALARS: 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
        if include_wall_clock or not is_wall_clock(tag)
    }
