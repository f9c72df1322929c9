"""deeprl: deep reinforcement learning for Gymnasium environments.

agent = deeprl.train("dqn", "CartPole-v1", seed=0)
agent = deeprl.load("runs/dqn-CartPole-v1-s0-...")
deeprl.evaluate(agent, "CartPole-v1", episodes=20, seed=1000)
deeprl.animate(agent, every=10).save("episode.html")  # or show it in a notebook cell
deeprl.sweep("dqn", "CartPole-v1", seeds="0-9", grid={"lr": [1e-3, 3e-4]})  # on Ray Tune: pip install deeprl[sweep]
deeprl.write_report("runs/dqn-CartPole-v1-s0-...")  # report.html: open it in a browser
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deeprl.version import __version__

# The public API, imported on first use: `import deeprl` (and `deeprl --version`, `--help`) need not pay for torch
# and Gymnasium until a function that uses them is called.
_PUBLIC = {
    "animate": "deeprl.media",
    "evaluate": "deeprl.evaluation",
    "load": "deeprl.agent",
    "make_env": "deeprl.envs",
    "make_vec_env": "deeprl.envs",
    "sweep": "deeprl.sweeps",
    "train": "deeprl.api",
    "write_report": "deeprl.report",
}

if TYPE_CHECKING:
    from deeprl.agent import load
    from deeprl.api import train
    from deeprl.envs import make_env, make_vec_env
    from deeprl.evaluation import evaluate
    from deeprl.media import animate
    from deeprl.report import write_report
    from deeprl.sweeps import sweep


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'deeprl' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = ["__version__", "animate", "evaluate", "load", "make_env", "make_vec_env", "sweep", "train", "write_report"]
