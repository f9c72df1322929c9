"""The algorithm registry: name -> module. Each module provides `Config` (a RunConfig dataclass),
`OBSERVATION_SPACES`, `ACTION_SPACES`, `METRIC_COLUMNS`, `check_setup(config, env)` (settings that do not
fit the env, refused before the run directory exists) and `train(config, env, run, device)`. The agents they
return are rebuilt from policy files without them (deeprl.policies.AGENT_LOADERS)."""

from __future__ import annotations

import importlib
from types import ModuleType

import gymnasium as gym

from deeprl.errors import DeeprlError

ALGORITHMS = {
    "dqn": "deeprl.algos.dqn",
    "reinforce": "deeprl.algos.reinforce",
    "a2c": "deeprl.algos.a2c",
    "ppo": "deeprl.algos.ppo",
    "actor-critic": "deeprl.algos.actor_critic",
    "ddpg": "deeprl.algos.ddpg",
    "td3": "deeprl.algos.td3",
    "sac": "deeprl.algos.sac",
}


def get_algorithm(name: str) -> ModuleType:
    """The algorithm's module; names are case-insensitive (DQN, dqn)."""
    if name.lower() not in ALGORITHMS:
        raise DeeprlError(f"unknown algorithm '{name}' (available: {', '.join(ALGORITHMS)})")
    return importlib.import_module(ALGORITHMS[name.lower()])


def algorithms_for(action_space: gym.Space) -> list[str]:
    """Names of the algorithms that can act in `action_space`."""
    return [name for name in ALGORITHMS if isinstance(action_space, get_algorithm(name).ACTION_SPACES)]


def check_spaces(name: str, env_id: str, env: gym.Env) -> None:
    """Refuse an env whose spaces the algorithm cannot handle, naming the algorithms that can."""
    module = get_algorithm(name)
    if not isinstance(env.observation_space, module.OBSERVATION_SPACES):
        kinds = ", ".join(space.__name__ for space in module.OBSERVATION_SPACES)
        raise DeeprlError(f"{name} needs {kinds} observations; {env_id} has {env.observation_space}")
    if not isinstance(env.action_space, module.ACTION_SPACES):
        fitting = algorithms_for(env.action_space)
        allowed = ", ".join(fitting) if fitting else "none yet"
        raise DeeprlError(
            f"{name} cannot act in {env_id}: its action space is {env.action_space} (algorithms for it: {allowed})"
        )
