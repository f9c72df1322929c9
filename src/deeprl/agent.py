"""What a trained agent is to its users: `act`, and a self-contained policy file.

A policy file is a `torch.save` of plain data only: tensors plus a JSON string saying which algorithm
built it, which kind of agent it holds (see deeprl.policies), the spaces it acts in and the network's shape.
It loads with `weights_only=True`, so a file from anyone cannot run code on the loading machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import torch

from deeprl.errors import DeeprlError
from deeprl.files import atomic_torch_save
from deeprl.policies import AGENT_LOADERS
from deeprl.version import __version__

POLICY_FORMAT = "deeprl-policy"
BEST_POLICY = "best_policy.pt"
FINAL_POLICY = "policy.pt"
# Policy files written before they named their agent's kind: the kind each algorithm's agent was then.
AGENT_OF_ALGORITHM = {
    "dqn": "q",
    "reinforce": "policy",
    "a2c": "policy",
    "ppo": "policy",
    "actor-critic": "policy",
    "ddpg": "scaled_actor",
    "td3": "scaled_actor",
    "sac": "scaled_actor",
}


class Agent(Protocol):
    observation_space: gym.Space
    action_space: gym.Space

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """One observation as the env returns it -> one action as `env.step` takes it (batches too)."""

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[Any, None]:
        """`act` in the form Stable-Baselines3's `model.predict` has: (action, None), None standing for the
        recurrent state that deeprl's agents do not have."""

    def policy_data(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON-able description naming the agent's kind, tensors): what the loader of that kind
        (deeprl.policies.AGENT_LOADERS) rebuilds the agent from."""


def save_policy(path: str | Path, algo: str, agent: Agent, env_spec: dict[str, Any], step: int | None = None) -> None:
    """`env_spec` ({"env": id, "max_episode_steps": ...}) lets eval and watch rebuild the env it knows;
    `step` is the training step the policy comes from."""
    meta, tensors = agent.policy_data()
    # a network of several seeds stacked (deeprl.seed_axis) holds views of the stack: save this seed's alone
    tensors = {
        name: tensor.clone() if tensor.untyped_storage().nbytes() > tensor.nbytes else tensor
        for name, tensor in tensors.items()
    }
    blob = {
        "format": POLICY_FORMAT,
        "deeprl_version": __version__,
        "algo": algo,
        "meta_json": json.dumps({**meta, "env_spec": env_spec, "step": step}),
        "state_dict": tensors,
    }
    atomic_torch_save(blob, path)


def resolve_policy_path(path: str | Path) -> Path:
    """A run directory means its best-evaluated policy (else its final one); a file means itself."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST_POLICY, FINAL_POLICY):
            if (path / name).is_file():
                return path / name
        if (path / "seeds.json").is_file():
            raise DeeprlError(f"{path} holds the runs of several seeds: name one of them, such as {path}/seed-N")
        if not (path / "config.yaml").is_file():
            raise DeeprlError(f"{path} is neither a run directory (no config.yaml) nor a model file")
        raise DeeprlError(f"run directory {path} holds no policy ({BEST_POLICY} or {FINAL_POLICY})")
    if not path.exists():
        raise DeeprlError(f"no such run directory or model file: {path}")
    return path


def read_policy_file(path: Path) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """(algo, meta, tensors) of a policy file, refusing anything that is not one."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the weights-only unpickler runs no code: any failure means "not a model"
        raise DeeprlError(f"{path} is not a readable deeprl model file ({type(error).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != POLICY_FORMAT:
        raise DeeprlError(f"{path} is not a deeprl model file")
    try:
        algo, meta, tensors = blob["algo"], json.loads(blob["meta_json"]), blob["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise DeeprlError(f"{path} is a damaged deeprl model file") from None
    if not (isinstance(algo, str) and isinstance(meta, dict)):
        raise DeeprlError(f"{path} is a damaged deeprl model file")
    return algo, meta, tensors


def load(path: str | Path) -> Agent:
    """The agent in a model file, or the best agent of a run directory. A policy file inside a finished run
    directory brings the run's eval.json as `agent.summary` (final and best scores, steps, timing); the summary
    is None for an unfinished run or a model file outside a run directory."""
    policy_path = resolve_policy_path(path)
    algo, meta, tensors = read_policy_file(policy_path)
    kind = meta.get("agent", AGENT_OF_ALGORITHM.get(algo))
    if not isinstance(kind, str) or kind not in AGENT_LOADERS:
        if "agent" not in meta:
            raise DeeprlError(f"{policy_path} names no agent kind and comes from an unknown algorithm '{algo}'")
        raise DeeprlError(
            f"{policy_path} holds an agent of kind {kind!r}, which this deeprl cannot rebuild "
            f"(it knows {', '.join(AGENT_LOADERS)})"
        )
    try:
        agent = AGENT_LOADERS[kind](meta, tensors)
    except (KeyError, TypeError, RuntimeError) as error:
        raise DeeprlError(f"{policy_path} does not match its algorithm '{algo}': {error}") from None
    agent.env_spec = meta.get("env_spec", {})
    agent.policy_path = policy_path
    agent.policy_step = meta.get("step")
    # A policy file inside a run directory belongs to that run: make_env(agent.run_dir) rebuilds its env.
    agent.run_dir = policy_path.parent if (policy_path.parent / "config.yaml").is_file() else None
    agent.summary = None if agent.run_dir is None else run_summary(agent.run_dir)
    return agent


def run_summary(run_dir: Path) -> dict[str, Any] | None:
    """A finished run's eval.json, or None (unfinished, or unreadable: the summary is information, not needed)."""
    try:
        summary = json.loads((run_dir / "eval.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None
