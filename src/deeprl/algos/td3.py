"""TD3 (Fujimoto et al., 2018): DDPG with twin critics, target policy smoothing and delayed actor updates.

The algorithm lives in deeprl.algos.ddpg as three switches; this module gives it its own name, defaults (SB3's TD3)
and presets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from deeprl.algos import ddpg
from deeprl.config import knob

OBSERVATION_SPACES = ddpg.OBSERVATION_SPACES
ACTION_SPACES = ddpg.ACTION_SPACES
METRIC_COLUMNS = ddpg.METRIC_COLUMNS
check_setup = ddpg.check_setup
train = ddpg.train
train_seeds = ddpg.train_seeds
seeds_refusal = ddpg.seeds_refusal


@dataclass
class Config(ddpg.Config):
    algo: ClassVar[str] = "td3"

    twin_critics: bool = knob(True, "two critics; targets take the smaller value")
    policy_delay: int = knob(2, "critic steps per actor (and target) update", low=1)
    target_policy_noise: float = knob(0.2, "std of the noise added to each target action ([-1, 1] units)", low=0.0)
