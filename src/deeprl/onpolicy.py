"""The rollout trainer shared by the on-policy actor-critics (A2C, PPO), on the loop skeleton of deeprl.loop.

Each rollout steps n_envs env copies n_steps times and keeps what the policy saw and did in a RolloutBuffer. The
copies never autoreset (EnvRunner), so no stored step leads from a final observation to a reset one; an episode
cut by a time limit stores V(its final observation) to bootstrap from. The algorithm's `update` (deeprl.algos.ppo
holds the whole of PPO's: scoring, GAE, epochs, loss) learns from the full rollout, and a metrics row records it.

Optionally the network sees normalised observations (the agent carries the running statistics, so its policy
files do too) and rewards scaled by the running std of the discounted return (training only: the statistics go
in checkpoints). Evaluations fire on step boundaries; checkpoints come at rollout boundaries, so no half-collected
rollout needs saving (the runner rebuilds its env copies mid-episode). When total_steps ends inside a rollout, that
partial rollout is not learnt from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from deeprl.action_heads import ACTION_SPACES  # noqa: F401 - every action space a policy head takes
from deeprl.buffers import RolloutBatch, RolloutBuffer
from deeprl.config import RunConfig, knob
from deeprl.errors import DeeprlError
from deeprl.experience import EnvRunner
from deeprl.exploration import annealed
from deeprl.loop import TrainFunction, load_state_of, seeds_training_function, state_of, training_function
from deeprl.nets import (
    ACTIVATIONS,
    ActorCritic,
    check_finite,
    clip_grad_norm_,
    gradient_step,
    observation_encoder,
    set_learning_rate,
)
from deeprl.normalization import ObservationNormalizer, RewardScaler
from deeprl.observations import (  # noqa: F401 - OBSERVATION_SPACES: any space, encoded (observations.py)
    OBSERVATION_SPACES,
    EncodedSpace,
    observation_dtype,
)
from deeprl.policies import PolicyAgent, policy_network
from deeprl.recurrent import (
    CRITIC_KINDS,
    RECURRENT_KINDS,
    RecurrentActorCritic,
    RecurrentAgent,
    SequenceRolloutBuffer,
    check_settings,
    recurrent_network,
    sequence_length,
)
from deeprl.run import Run
from deeprl.seed_axis import (
    SeedStack,
    detached_copy,
    fold,
    joined_optimizer_state,
    seed_optimizer_state,
    step_seeds,
)

RMSPROP_ALPHA = 0.99  # SB3's A2C (and the A2C paper's) squared-gradient decay


@dataclass
class OnPolicyConfig(RunConfig):
    """The knobs A2C and PPO share; each algorithm's Config sets its own defaults."""

    # network
    hidden_sizes: tuple[int, ...] = knob((64, 64), "hidden layer widths of the policy and value MLPs", low=1)
    activation: str = knob("tanh", "hidden activation", choices=tuple(ACTIVATIONS))
    orthogonal_init: bool = knob(True, "orthogonal initial weights (sqrt 2 hidden, 0.01 policy head, 1 value head)")
    value_network: str = knob(
        "separate",
        "the value head's trunk: separate (its own MLP) or shared with the policy",
        choices=("separate", "shared"),
    )
    log_std_init: float = knob(
        0.0,
        "Box actions: initial log standard deviation of the Gaussian policy, in the "
        "[-1, 1] units it acts in (0: a std of half the Box's width)",
    )
    # memory (deeprl.recurrent)
    recurrent: str = knob(
        "none", "a recurrent cell reading the observations before the MLPs: none, lstm or gru", choices=RECURRENT_KINDS
    )
    recurrent_hidden_size: int = knob(64, "units of the recurrent cell (its output feeds the MLPs)", low=1)
    recurrent_critic: str = knob(
        "separate", "the critic's recurrent cell: separate (its own) or shared (the actor's)", choices=CRITIC_KINDS
    )
    # collection
    n_envs: int = knob(1, "env copies stepped together", low=1)
    n_steps: int = knob(2048, "steps of every copy per rollout (a rollout holds n_steps * n_envs)", low=1)
    gamma: float = knob(0.99, "discount factor", low=0.0, high=1.0)
    gae_lambda: float = knob(
        0.95, "GAE lambda: 1 gives Monte-Carlo returns to the rollout's end, 0 one-step TD", low=0.0, high=1.0
    )
    normalize_observations: bool = knob(
        False, "feed the networks observations standardised by running statistics (saved in the policy file)"
    )
    normalize_rewards: bool = knob(False, "divide rewards by the running std of the discounted return (training only)")
    # learning
    lr: float = knob(3e-4, "learning rate", above=0.0)
    lr_end: float | None = knob(None, "anneal lr linearly to this by total_steps; None: constant", low=0.0)
    optimizer: str = knob("adam", "adam or rmsprop", choices=("adam", "rmsprop"))
    optimizer_eps: float = knob(
        1e-5, "the optimiser's epsilon (SB3 and CleanRL use 1e-5 for on-policy methods)", above=0.0
    )
    value_coef: float = knob(0.5, "weight of the value loss (mean squared error to the returns)", low=0.0)
    entropy_coef: float = knob(0.0, "weight of the policy's entropy bonus", low=0.0)
    max_grad_norm: float | None = knob(0.5, "clip the gradient's global norm; None: no clipping", above=0.0)
    normalize_advantages: bool = knob(True, "standardise the advantages within each (mini)batch")


def check_setup(config: OnPolicyConfig, env: gym.Env) -> None:
    """Pictures the CNN can take, observation normalisation where there are Box values to standardise, and recurrent
    settings that agree."""
    observation_encoder(env.observation_space)  # refuses a picture smaller than the CNN takes, before the run exists
    if config.normalize_observations:
        check_normalizable(config.env, env.observation_space)
    check_settings(config)  # recurrent settings that contradict each other


def check_normalizable(env_name: str, space: gym.Space) -> None:
    """Observation normalisation standardises Box values (ObservationNormalizer): a picture alone, which the CNN
    scales itself, or an encoded Dict or Tuple without a Box entry gives it nothing to do."""
    if isinstance(space, EncodedSpace):
        if not space.encoder.box_columns:
            raise DeeprlError(
                f"normalize_observations standardises the Box entries of an observation, but {env_name} gives "
                f"{space.source}, which holds none (one-hot and 0/1 entries are read as they are, pictures for the "
                "CNN are scaled to [0, 1] by it): drop normalize_observations"
            )
    elif observation_encoder(space) is not None:
        raise DeeprlError(
            f"normalize_observations standardises observation vectors, but {env_name} gives pictures "
            f"{space.shape}, which the CNN scales to [0, 1] itself: drop normalize_observations"
        )


class UpdateContext:
    """What an algorithm's update works on: one seed's policy and optimiser, and the generator of its minibatch
    orders. The update is written for any number of seeds stepping together (SeedsContext): it scores a list of
    batches, one a seed, and steps on a list of losses, one a seed."""

    def __init__(
        self,
        config: Any,  # the algorithm's Config (an OnPolicyConfig)
        policy: ActorCritic,
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,  # draws minibatch orders
        device: torch.device,
    ) -> None:
        self.config, self.optimizer, self.device = config, optimizer, device
        self.policies, self.rngs = [policy], [rng]
        self.parameters = list(policy.parameters())

    def evaluate(self, batches: Sequence[RolloutBatch]) -> list[Scores]:
        """Each seed's (log-probabilities of its batch's actions, entropies, values) under its current parameters."""
        ((policy, batch),) = zip(self.policies, batches, strict=True)
        return [policy.evaluate_actions(batch.obs, batch.actions, batch.action_masks)]

    def gradient_step(self, losses: Sequence[torch.Tensor], step: int) -> None:
        """One optimiser step on each seed's loss, its gradient's norm clipped first; a non-finite loss stops the
        run."""
        (loss,) = losses
        gradient_step(self.optimizer, self.parameters, loss, self.config.max_grad_norm, step)


class SeedsContext(UpdateContext):
    """Several seeds' update contexts stepping together on a leading seed axis (deeprl.seed_axis): their policies'
    parameters stacked, each seed's batch folded seed-major through one pass of the stacked trunks and heads, each
    seed's actions scored with its own log std, each seed's loss its own; then each seed's gradient clipped as its own
    and one optimiser over every seed's parameters, each stepped as a tensor of its own. Each seed's numbers are
    those of its single-seed run (tests/test_seeds.py)."""

    def __init__(self, contexts: Sequence[UpdateContext]) -> None:
        first = contexts[0]
        self.config, self.device = first.config, first.device
        self.policies = [policy for context in contexts for policy in context.policies]
        self.rngs = [rng for context in contexts for rng in context.rngs]
        self.seeds = [context.config.seed for context in contexts]
        self.stack = SeedStack(self.policies)
        self.seed_parameters = [list(policy.parameters()) for policy in self.policies]
        self.parameters = [parameter for parameters in self.seed_parameters for parameter in parameters]
        self.optimizer = make_optimizer(self.config, self.parameters)
        self.optimizer.load_state_dict(joined_optimizer_state([context.optimizer.state_dict() for context in contexts]))

    def evaluate(self, batches: Sequence[RolloutBatch]) -> list[Scores]:
        network, seeds = self.stack.network, len(batches)
        policy_out, values = network.outputs(fold(batches, "obs"))
        scores = []
        for seed, (out, batch) in enumerate(zip(policy_out.chunk(seeds), batches, strict=True)):
            # the seed's slice of the stacked log std, so that its gradient reaches the stack
            log_std = None if network.log_std is None else network.log_std[seed]
            log_probs, entropies = network.head.log_prob_entropy(out, log_std, batch.actions, batch.action_masks)
            scores.append((log_probs, entropies, None if values is None else values.chunk(seeds)[seed]))
        return scores

    def gradient_step(self, losses: Sequence[torch.Tensor], step: int) -> None:
        stacked = torch.stack(list(losses))
        if not torch.isfinite(stacked).all():
            seed, loss = next(
                (seed, loss) for seed, loss in zip(self.seeds, stacked, strict=True) if not loss.isfinite()
            )
            raise DeeprlError(f"seed {seed}'s loss became {loss.item()} at step {step}; try a lower lr")
        step_seeds(self.optimizer, [self.stack], stacked, self.clip_gradients)

    def clip_gradients(self) -> None:
        if self.config.max_grad_norm is not None:
            for parameters in self.seed_parameters:
                clip_grad_norm_(parameters, self.config.max_grad_norm)

    def seed_state(self, position: int) -> dict[str, Any]:
        """Seed `position`'s policy and optimiser state as its single-seed run would checkpoint them."""
        return {
            "policy": detached_copy(self.policies[position].state_dict()),
            "optimizer": seed_optimizer_state(self.optimizer.state_dict(), position, len(self.policies)),
        }


# each seed's (log-probabilities, entropies, values or None) of a batch
Scores = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
# update(context, rollouts, last_values, progress, step) -> each seed's metrics row: one full rollout a seed;
# last_values are V of the observations that follow each rollout's last step, progress the fraction of training done
Update = Callable[[UpdateContext, list[RolloutBuffer], list[np.ndarray], float, int], list[dict[str, float]]]


def normalized_advantages(advantages: torch.Tensor) -> torch.Tensor:
    """Advantages standardised within their batch (a lone sample is left as it is)."""
    if len(advantages) < 2:
        return advantages
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def explained_variance(values: np.ndarray, returns: np.ndarray) -> float:
    """1 - Var(returns - values) / Var(returns): 1 when the values predict the returns, 0 when they are no better
    than a constant, negative when worse; NaN when the returns do not vary."""
    variance = np.var(returns)
    return float("nan") if variance == 0 else float(1 - np.var(returns - values) / variance)


def make_optimizer(config: OnPolicyConfig, parameters: Sequence[torch.nn.Parameter]) -> torch.optim.Optimizer:
    # foreach: one batched kernel per operation over all parameters instead of one per tensor, which small nets
    # (overhead-bound, on the CPU too) feel. A fused Adam would change every recorded result's bits.
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            parameters, lr=config.lr, alpha=RMSPROP_ALPHA, eps=config.optimizer_eps, foreach=True
        )
    return torch.optim.Adam(parameters, lr=config.lr, eps=config.optimizer_eps, foreach=True)


def values_of(policy: ActorCritic, network_obs: np.ndarray, device: torch.device) -> np.ndarray:
    with torch.inference_mode():
        return policy.value(torch.from_numpy(network_obs).to(device)).cpu().numpy()


class RolloutTrainer:
    """The rollout family as the loop skeleton (deeprl.loop) drives it: one step of every copy per `advance`, and
    the algorithm's `update` on each complete rollout."""

    def __init__(
        self,
        config: OnPolicyConfig,
        runner: EnvRunner,
        run: Run,
        rng: np.random.Generator,
        device: torch.device,
        update: Update,
    ) -> None:
        self.config, self.runner, self.run, self.rng, self.device = config, runner, run, rng, device
        self.update = update
        obs_space, action_space = runner.observation_space, runner.action_space
        self.obs_normalizer = ObservationNormalizer.for_space(obs_space) if config.normalize_observations else None
        self.reward_scaler = RewardScaler(config.n_envs, config.gamma) if config.normalize_rewards else None
        self.recurrent = config.recurrent != "none"
        if self.recurrent:  # a recurrent cell before the MLPs (deeprl.recurrent); its agent keeps a state per copy
            network = recurrent_network(obs_space, action_space, config)
            self.policy = RecurrentActorCritic(**network).to(device)
            self.agent = RecurrentAgent(self.policy, obs_space, action_space, network, self.obs_normalizer)
            # collection acts from a state of its own (checkpointed): evaluations reset the agent's at will
            self.collector = RecurrentAgent(self.policy, obs_space, action_space, network, self.obs_normalizer)
        else:
            network = policy_network(obs_space, action_space, config, config.value_network, config.log_std_init)
            self.policy = ActorCritic(**network).to(device)
            self.agent = PolicyAgent(self.policy, obs_space, action_space, network, obs_normalizer=self.obs_normalizer)
            self.collector = self.agent
        optimizer = make_optimizer(config, list(self.policy.parameters()))
        self.context = UpdateContext(config, self.policy, optimizer, rng, device)
        # what the network reads is stored: normalised vectors as float32, pictures as bytes (beside a normalised
        # vector too: ObservationNormalizer)
        self.obs_dtype = observation_dtype(obs_space) if self.obs_normalizer is None else self.obs_normalizer.dtype
        buffer: Callable[..., RolloutBuffer] = RolloutBuffer
        if self.recurrent:  # a recurrent rollout also stores the state every step acted from, and trains on sequences
            buffer = partial(
                SequenceRolloutBuffer, state_shape=self.policy.state_shape, sequence_length=sequence_length(config)
            )
        self.rollout = buffer(
            config.n_steps,
            config.n_envs,
            obs_space.shape,
            self.obs_dtype,
            action_shape=self.policy.head.raw_shape,
            action_dtype=self.policy.head.raw_dtype,
            mask_width=None if runner.action_masks is None else runner.action_masks.shape[1],
        )
        if self.obs_normalizer is not None:  # every observation acted on enters the statistics, the first ones too
            self.obs_normalizer.update(runner.obs)  # (a resumed run's statistics replace these)

    def advance(self, step: int) -> int:
        """One step of every copy into the rollout; the update once the rollout is complete."""
        step = self.collect(step)
        if self.rollout.full:
            learn(self.context, [self], self.update, step)
        return step

    def collect(self, step: int) -> int:
        """One step of every copy into the rollout; the step reached."""
        config, runner, agent = self.config, self.runner, self.agent
        step += config.n_envs
        network_obs = agent.network_input(runner.obs.astype(self.obs_dtype))
        if self.recurrent:  # the state each copy acts from is stored with the step: training unrolls from it
            self.rollout.add_states(self.collector.current_state(config.n_envs), self.collector.episode_starts)
        # sampled in NumPy (PolicyAgent.raw_act), and the algorithm scores the stored raw actions once the rollout is
        # full; a CNN acts in torch, whose forward pass scores each action (log-probability and value) as it acts
        masks = runner.action_masks  # stored with the step: the update scores each action under its own mask
        log_probs = values = None
        if self.recurrent:
            raw_actions = self.collector.raw_act(network_obs, deterministic=False, rng=self.rng, action_masks=masks)
        else:
            raw_actions, log_probs, values = self.agent.scored_raw_act(network_obs, False, self.rng, masks)
        transitions = runner.step(self.collector.to_env(raw_actions), step)
        cut = transitions.truncated & ~transitions.terminated
        truncated_values = np.zeros(config.n_envs, dtype=np.float32)
        if cut.any():  # the episode goes on beyond the time limit: its final observation's value stands for it
            final_obs = agent.network_input(transitions.next_obs[cut].astype(self.obs_dtype))
            truncated_values[cut] = self.values(final_obs, np.flatnonzero(cut))
        rewards = transitions.rewards.astype(np.float32)
        if self.reward_scaler is not None:
            rewards = self.reward_scaler(transitions.rewards, transitions.terminated | transitions.truncated)
        self.rollout.add(
            network_obs,
            raw_actions,
            rewards,
            transitions.terminated,
            transitions.truncated,
            truncated_values,
            masks,
            log_probs,
            values,
        )
        if self.recurrent:  # a copy whose episode ended begins the next one from a fresh state
            self.collector.reset(np.flatnonzero(transitions.terminated | transitions.truncated))
        if self.obs_normalizer is not None:
            self.obs_normalizer.update(runner.obs)
        runner.report(transitions)
        return step

    def last_values(self) -> np.ndarray:
        """V of the observations that follow the rollout's last step."""
        return self.values(self.agent.network_input(self.runner.obs.astype(self.obs_dtype)))

    def values(self, network_obs: np.ndarray, copies: np.ndarray | None = None) -> np.ndarray:
        """V of observations that follow the last step of every copy (or of `copies`); a recurrent critic reads them
        with the state each copy reached."""
        if self.recurrent:
            return self.collector.values(network_obs, copies)
        return values_of(self.policy, network_obs, self.device)

    def can_checkpoint(self, step: int) -> bool:
        return self.rollout.position == 0  # a half-collected rollout is never saved

    def next_checkpoint(self, step: int) -> int:
        return step + self.rollout.n_steps * self.config.n_envs

    def check_finite(self, step: int) -> None:
        check_finite(self.policy, step)

    def parts(self) -> dict[str, Any]:
        """What a checkpoint holds of the trainer, by name."""
        return {
            "policy": self.policy,
            "optimizer": self.context.optimizer,
            "obs_normalizer": self.obs_normalizer,
            "reward_scaler": self.reward_scaler,
            **({"collection_state": self.collector} if self.recurrent else {}),
        }

    def state_dict(self) -> dict[str, Any]:
        return state_of(self.parts())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state_of(self.parts(), state)


def learn(context: UpdateContext, trainers: Sequence[RolloutTrainer], update: Update, step: int) -> None:
    """The update of the trainers' full rollouts (one trainer's, or several seeds' on `context`'s seed axis) at the
    learning rate of this point in training, and each one's metrics row."""
    config = context.config
    last_values = [trainer.last_values() for trainer in trainers]
    progress = min(step / config.total_steps, 1.0)
    lr = annealed(config.lr, config.lr_end, progress)
    set_learning_rate([context.optimizer], lr)
    rows = update(context, [trainer.rollout for trainer in trainers], last_values, progress, step)
    for trainer, metrics in zip(trainers, rows, strict=True):
        rollout = trainer.rollout
        trainer.run.log_update(
            step,
            trainer.runner.episodes,
            **metrics,
            explained_variance=explained_variance(rollout.values, rollout.returns),
            lr=lr,
        )
        rollout.reset()


def train_with(update: Update) -> TrainFunction:
    """The `train` of a rollout algorithm module (A2C, PPO): its `update` on the rollout trainer."""
    return training_function(partial(RolloutTrainer, update=update))


class OnPolicySeeds:
    """Rollout trainers of several seeds stepping together: each seed collects its rollout as in its single-seed
    run (its own env copies, generator and normalisers); their updates run as one on a seed axis (SeedsContext)."""

    def __init__(self, trainers: list[RolloutTrainer], update: Update) -> None:
        self.trainers, self.update = trainers, update
        self.context = self.stacked()

    def stacked(self) -> SeedsContext:
        """The trainers' contexts as one on a seed axis, their parameters moved into the stack."""
        context = SeedsContext([trainer.context for trainer in self.trainers])
        for trainer in self.trainers:  # acting reads the parameters through NumPy views: they live in the stack now
            trainer.agent.follow_parameters()
        return context

    def advance(self, step: int) -> int:
        reached = [trainer.collect(step) for trainer in self.trainers]  # every seed reaches the same step
        step = reached[0]
        if self.trainers[0].rollout.full:  # the seeds' rollouts fill at the same steps
            learn(self.context, self.trainers, self.update, step)
        return step

    def can_checkpoint(self, step: int) -> bool:
        return self.trainers[0].can_checkpoint(step)  # between rollouts, which every seed completes at once

    def seed_state(self, position: int) -> dict[str, Any]:
        return {**self.trainers[position].state_dict(), **self.context.seed_state(position)}

    def drop(self, positions: list[int]) -> None:
        """The seeds at `positions` leave the stack; the others take back their own state and stack again."""
        kept = [position for position in range(len(self.trainers)) if position not in positions]
        for position in kept:
            trainer = self.trainers[position]
            trainer.load_state_dict({**trainer.state_dict(), **self.context.seed_state(position)})
        self.trainers = [self.trainers[position] for position in kept]
        if self.trainers:
            self.context = self.stacked()


def seeds_refusal(config: OnPolicyConfig, obs_space: gym.Space) -> str | None:
    """Why the seeds of these settings cannot step together on a seed axis (None: they can)."""
    if config.recurrent != "none":
        return "recurrent policies are not stacked yet"
    if observation_encoder(obs_space) is not None:
        return "a CNN's (pictures) are not stacked yet"
    if getattr(config, "target_kl", None) is not None:
        return "target_kl stops each seed's epochs at a minibatch of its own"
    return None


def train_seeds_with(update: Update) -> Callable[..., list[Any]]:
    """The `train_seeds` of a rollout algorithm module: its seeds' rollout trainers with their updates stacked."""
    return seeds_training_function(partial(RolloutTrainer, update=update), partial(OnPolicySeeds, update=update))
