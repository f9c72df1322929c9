"""deeprl: deep reinforcement learning for Gymnasium environments.

    agent = deeprl.train("dqn", "CartPole-v1", seed=0)
    agent = deeprl.load("runs/dqn-CartPole-v1-s0-...")
    deeprl.evaluate(agent, "CartPole-v1", episodes=20, seed=1000)
    deeprl.animate(agent, every=10).save("episode.html")  # or show it in a notebook cell
    deeprl.sweep("dqn", "CartPole-v1", seeds="0-9", grid={"lr": [1e-3, 3e-4]})  # on Ray Tune: pip install deeprl[sweep]
"""

__version__ = "0.1.0"

from deeprl.agent import load
from deeprl.api import train
from deeprl.envs import make_env, make_vec_env
from deeprl.evaluate import evaluate
from deeprl.media import animate
from deeprl.sweeps import sweep

__all__ = ["__version__", "animate", "evaluate", "load", "make_env", "make_vec_env", "sweep", "train"]
