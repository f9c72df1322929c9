"""Exploration schedules: how much to act at random as training goes on."""

from __future__ import annotations

import math
from dataclasses import dataclass

EPSILON_SCHEDULES = ("linear", "exponential", "episodic", "constant")


@dataclass(frozen=True)
class EpsilonSchedule:
    """Probability of a random action at a given env step / finished-episode count.

    - linear: from `start` to `end` over `decay_steps` steps, then flat;
    - exponential: `end + (start - end) * exp(-step / decay_steps)` (per-step decay);
    - episodic: `max(end, start * decay_factor ** episodes)` (multiplied after each episode);
    - constant: always `start`.
    """

    kind: str
    start: float
    end: float
    decay_steps: int = 1
    decay_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in EPSILON_SCHEDULES:
            raise ValueError(f"unknown epsilon schedule {self.kind!r}")

    def value(self, step: int, episodes: int = 0) -> float:
        if self.kind == "linear":
            fraction = min(1.0, step / self.decay_steps)
            return self.start + fraction * (self.end - self.start)
        if self.kind == "exponential":
            return self.end + (self.start - self.end) * math.exp(-step / self.decay_steps)
        if self.kind == "episodic":
            return max(self.end, self.start * self.decay_factor**episodes)
        return self.start
