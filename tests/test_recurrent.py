"""Recurrent policies (deeprl.recurrent): sequence minibatches by hand, the state carried and reset in collection and
the very same state in training, checkpoints, the agent's state, the partially observed envs, and learning."""

from __future__ import annotations

import subprocess

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import deeprl
from deeprl.algos import ppo
from deeprl.experience import EnvRunner
from deeprl.recurrent import RecurrentActorCritic, RecurrentAgent, SegmentLayout, SequenceRolloutBuffer, Sequences
from tests.conftest import kill_and_resume, run_deeprl

QUICK = {"tensorboard": False, "progress": False, "final_eval_episodes": 2, "eval_every": 100_000}


def filled_buffer(sequence_length: int) -> SequenceRolloutBuffer:
    """5 steps x 2 copies whose every entry names its step and copy (10 * t + copy); episodes begin at steps 0 and 3
    of copy 0 and at 0 and 2 of copy 1."""
    buffer = SequenceRolloutBuffer(
        5, 2, (1,), np.dtype(np.float32), state_shape=(1, 1), sequence_length=sequence_length
    )
    named = np.array([[10 * t + copy for copy in range(2)] for t in range(5)], dtype=np.float32)
    starts = np.zeros((5, 2), dtype=np.bool_)
    starts[[0, 3], 0] = starts[[0, 2], 1] = True
    for t in range(5):
        buffer.add_states(torch.from_numpy(-named[t].reshape(2, 1, 1)), starts[t])
        buffer.add(named[t, :, None], named[t].astype(np.int64), named[t], ~starts[t], starts[t], named[t])
    buffer.log_probs[...], buffer.values[...] = named + 0.1, named + 0.2
    buffer.advantages[...], buffer.returns[...] = named + 0.3, named + 0.4
    return buffer


def test_sequence_minibatches_by_hand():
    """Pieces of 2 steps ([0, 1], [2, 3], [4, padding]) of each copy, each from the state stored at its first step,
    the episode starts where collection saw them, and the padding out of every per-step tensor."""
    buffer = filled_buffer(sequence_length=2)
    batches = list(buffer.minibatches(4, np.random.default_rng(0), "cpu"))
    assert len(batches) == 3  # as many as a feed-forward rollout of 10 steps in minibatches of 4
    seen = []
    for batch in batches:
        sequences: Sequences = batch.obs
        assert sequences.obs.shape == (2, 2, 1) and batch.actions.shape == (2, 2)
        for column in range(2):
            first = int(sequences.obs[0, column, 0])  # 10 * t0 + copy
            t0, copy = divmod(first, 10)
            length = 1 if t0 == 4 else 2
            seen.append((t0, copy))
            assert sequences.obs[:length, column, 0].tolist() == [10 * t + copy for t in range(t0, t0 + length)]
            assert sequences.valid[:, column].tolist() == [True, length == 2]
            assert sequences.initial_states[column].item() == -first  # the state stored at the piece's first step
            expected_starts = [(copy == 0 and t in (0, 3)) or (copy == 1 and t in (0, 2)) for t in (t0, t0 + 1)]
            assert sequences.episode_starts[:length, column].tolist() == expected_starts[:length]
            if length == 1:  # padding: zeros, never a start
                assert sequences.obs[1, column, 0] == 0 and not sequences.episode_starts[1, column]
        # per-step tensors: the valid steps, time first, then sequence
        names = sequences.obs[:, :, 0][sequences.valid]
        assert batch.actions[sequences.valid].tolist() == names.long().tolist()
        for tensor, offset in zip(batch[2:], (0.1, 0.2, 0.3, 0.4)):
            torch.testing.assert_close(tensor, names + offset, rtol=0, atol=1e-5)
    assert sorted(seen) == [(t0, copy) for t0 in (0, 2, 4) for copy in (0, 1)]  # every step exactly once


def test_whole_rollout_batch_is_every_copy_in_storage_order():
    buffer = filled_buffer(sequence_length=2)
    (whole,) = buffer.minibatches(10, None, "cpu")
    assert whole.obs.obs.shape == (5, 2, 1) and whole.obs.valid.all()
    assert whole.obs.initial_states.flatten().tolist() == [0.0, -1.0]  # the states stored at step 0
    assert whole.obs.episode_starts.tolist() == buffer.episode_starts.tolist()
    assert whole.old_log_probs.tolist() == pytest.approx((buffer.log_probs.reshape(-1)).tolist())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_unroll_resets_the_state_exactly_at_each_episode_start(cell):
    """Inside a sequence the state is zeros exactly at an episode start: the outputs from there on are those of a
    sequence starting there from zeros; before it, those of the stored initial state."""
    torch.manual_seed(0)
    network = RecurrentActorCritic(3, {"type": "Discrete", "n": 2}, recurrent=cell, recurrent_hidden_size=4)
    obs = torch.randn(6, 2, 3)
    initial = torch.randn(2, *network.state_shape)
    starts = torch.zeros(6, 2, dtype=torch.bool)
    starts[3, 0] = True  # copy 0: a new episode at step 3
    valid = torch.ones(6, 2, dtype=torch.bool)
    actor, critic = network.unroll(Sequences(obs, initial, starts, valid))

    def from_state(inputs: torch.Tensor, state: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for x in inputs:
            actor_features, _, state = network.step(x[None], state[None])
            state = state[0]
            outputs.append(actor_features[0])
        return outputs

    copy0 = from_state(obs[:3, 0], initial[0]) + from_state(obs[3:, 0], torch.zeros_like(initial[0]))
    copy1 = from_state(obs[:, 1], initial[1])
    torch.testing.assert_close(actor[:, 0], torch.stack(copy0), rtol=0, atol=1e-6)
    torch.testing.assert_close(actor[:, 1], torch.stack(copy1), rtol=0, atol=1e-6)
    # without the reset, copy 0 would carry its state on: the outputs after step 3 differ
    carried = from_state(obs[:, 0], initial[0])
    assert not torch.allclose(torch.stack(carried)[3:], actor[3:, 0], atol=1e-4)
    assert critic.shape == actor.shape and not torch.allclose(critic, actor)  # the critic's own cell


def step_by_step(network: RecurrentActorCritic, sequences: Sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's and critic's features of `sequences` stepped one step at a time, each cell on its own with
    gradients (torch.lstm_cell / gru_cell on the cell's weights), the state zeroed at every episode start."""
    parts = network.actor_parts

    def cell_outputs(cell, state: torch.Tensor) -> torch.Tensor:
        outputs = []
        for inputs, starts in zip(sequences.obs, sequences.episode_starts):
            state = torch.where(starts.reshape(-1, 1, 1), 0.0, state)
            if parts == 2:
                h, c = torch.lstm_cell(inputs, (state[:, 0], state[:, 1]), *cell.weights())
                state = torch.stack((h, c), dim=1)
            else:
                h = torch.gru_cell(inputs, state[:, 0], *cell.weights())
                state = h[:, None]
            outputs.append(h)
        return torch.stack(outputs)

    actor = cell_outputs(network.actor_cell, sequences.initial_states[:, :parts])
    return actor, cell_outputs(network.critic_cell, sequences.initial_states[:, parts:])


# (steps, copies): episode starts; "|" a start. Copy 0 of "one long beside short ones" runs on from its stored state
LAYOUTS = {
    "a start at every step": np.ones((6, 2), dtype=np.bool_),
    "starts at step 0 of one copy only": np.array([[1, 0]] + [[0, 0]] * 4 + [[0, 1]], dtype=np.bool_),
    "one long beside short ones": np.array([[0, t % 4 == 0] for t in range(24)]),
}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_unroll_runs_whole_pieces_as_stepping_would(cell, layout):
    """The fused cells over the pieces between episode starts give the features and the gradients of stepping each
    cell one step at a time: pieces of one step, a copy that begins an episode at its first step beside one that
    carries its stored state on, and a piece of 24 steps beside pieces of 4, which run in two chunks of 12 steps, the
    second from the state the first ended in. Each cell runs once per chunk, not once per step."""
    torch.manual_seed(0)
    starts = torch.from_numpy(LAYOUTS[layout].astype(np.bool_))
    steps, copies = starts.shape
    network = RecurrentActorCritic(3, {"type": "Discrete", "n": 2}, recurrent=cell, recurrent_hidden_size=4)
    sequences = Sequences(
        torch.randn(steps, copies, 3),
        torch.randn(copies, *network.state_shape),
        starts,
        torch.ones(steps, copies, dtype=torch.bool),
    )
    calls = []
    for one in network.cells:
        one.cell.register_forward_hook(lambda module, inputs, outputs: calls.append(module))
    actor, critic = network.unroll(sequences)
    chunks = len(SegmentLayout.of(starts.numpy()).widths)
    assert chunks == (2 if layout == "one long beside short ones" else 1)
    assert len(calls) == 2 * chunks
    weights = torch.randn(steps, copies, 4)
    gradients = []
    for features in ((actor, critic), step_by_step(network, sequences)):
        network.zero_grad()
        ((features[0] * weights).sum() + (features[1] * weights**2).sum()).backward()
        gradients.append([parameter.grad.clone() for parameter in network.cells[0].parameters()])
        gradients[-1] += [parameter.grad.clone() for parameter in network.cells[1].parameters()]
    expected_actor, expected_critic = step_by_step(network, sequences)
    torch.testing.assert_close(actor, expected_actor, rtol=0, atol=1e-6)
    torch.testing.assert_close(critic, expected_critic, rtol=0, atol=1e-6)
    for got, expected in zip(*gradients, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # acting steps both cells in one call: the same features
    with torch.no_grad():
        state = sequences.initial_states
        for t in range(steps):
            state = torch.where(starts[t].reshape(-1, 1, 1), 0.0, state)
            acting_actor, acting_critic, state = network.step(sequences.obs[t], state)
            torch.testing.assert_close(acting_actor, expected_actor[t], rtol=0, atol=1e-6)
            torch.testing.assert_close(acting_critic, expected_critic[t], rtol=0, atol=1e-6)


RECORDED = ("obs", "actions", "states", "episode_starts", "terminated", "truncated", "truncated_values", "log_probs")


def recorded_update(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Record, at each update, the rollout as collected, the collecting network, and what the first minibatch's
    evaluation gave (before the first gradient step)."""
    records: list[dict] = []
    epochs = ppo.minibatch_epochs

    def recording_epochs(context, rollouts, clip_range, step):
        ((policy, rollout),) = zip(context.policies, rollouts, strict=True)
        record = {name: getattr(rollout, name).copy() for name in RECORDED}
        record["network"] = {key: value.clone() for key, value in policy.state_dict().items()}
        evaluate = policy.evaluate_actions

        def first_evaluation(sequences, actions, *rest):
            log_probs, entropies, values = evaluate(sequences, actions, *rest)
            record.setdefault("first_batch", (sequences, actions, log_probs.detach().clone()))
            return log_probs, entropies, values

        policy.evaluate_actions = first_evaluation
        try:
            return epochs(context, rollouts, clip_range, step)
        finally:
            del policy.evaluate_actions
            records.append(record)

    monkeypatch.setattr(ppo, "minibatch_epochs", recording_epochs)
    return records


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_collection_carries_and_resets_the_state_and_training_sees_the_same(tmp_path, monkeypatch, cell):
    """Replaying two rollouts from zeros, step by step with the network that collected each: every stored state is the
    one collection reached (zeros exactly after an episode's end), an episode cut by the time limit bootstraps from
    the value of its final observation read with the state reached, and the log-probabilities of the stored actions
    are the same when scored over the whole rollout and in the first minibatch of pieces, before any gradient step."""
    records = recorded_update(monkeypatch)
    final_observations = []
    env_step = EnvRunner.step

    def recording_step(self, actions, step):
        transitions = env_step(self, actions, step)
        final_observations.append(transitions.next_obs.copy())
        return transitions

    monkeypatch.setattr(EnvRunner, "step", recording_step)
    deeprl.train(
        "ppo",
        "CartPoleNoVel-v1",
        seed=0,
        steps=192,  # two rollouts: the second collected by the network the first update made
        run_dir=tmp_path / "run",
        recurrent=cell,
        recurrent_hidden_size=8,
        n_envs=3,
        n_steps=32,
        batch_size=48,
        sequence_length=6,  # pieces start mid-episode, from stored states, and hold episode starts inside
        n_epochs=1,
        max_episode_steps=9,  # time-limit cuts in the rollout
        normalize_observations=False,  # the final observations as stored
        **QUICK,
    )
    assert len(records) == 2
    arguments = deeprl_network(tmp_path / "run")
    state, done = torch.zeros(3, *RecurrentActorCritic(**arguments).state_shape), np.ones(3, bool)  # all begin
    for rollout, record in enumerate(records):
        # the network the rollout was collected with: the second one's is the first update's result (acting must not
        # keep using weights from before it)
        network = RecurrentActorCritic(**arguments)
        network.load_state_dict(record["network"])
        log_probs = []
        with torch.no_grad():
            for t in range(32):
                expected_starts = done if t == 0 else record["terminated"][t - 1] | record["truncated"][t - 1]
                assert record["episode_starts"][t].tolist() == expected_starts.tolist()
                state = torch.where(torch.from_numpy(expected_starts).reshape(-1, 1, 1), 0.0, state)
                assert torch.equal(torch.from_numpy(record["states"][t]), state), (rollout, t)
                actor, _, state = network.step(torch.from_numpy(record["obs"][t]), state)
                log_prob, _, _ = network.feed_forward.evaluate_actions(actor, torch.from_numpy(record["actions"][t]))
                log_probs.append(log_prob)
                cut = record["truncated"][t] & ~record["terminated"][t]
                final_obs = torch.from_numpy(final_observations[32 * rollout + t])
                bootstrap = network.value_step(final_obs, state).numpy()
                np.testing.assert_allclose(
                    record["truncated_values"][t], np.where(cut, bootstrap, 0.0), rtol=0, atol=1e-6
                )
        done = record["terminated"][-1] | record["truncated"][-1]
        ended = record["terminated"] | record["truncated"]
        assert ended[:-1].sum() >= 2 and (record["states"][1:] != 0).any()  # episodes ended, and states were carried
        assert (record["truncated"] & ~record["terminated"]).sum() >= 2
        collected = torch.stack(log_probs)
        np.testing.assert_allclose(record["log_probs"], collected.numpy(), rtol=0, atol=1e-6)
        sequences, _, first = record["first_batch"]
        assert sequences.episode_starts[1:].any() and (sequences.initial_states != 0).any()
        # the first minibatch's steps, located by their observations in the rollout
        steps = [
            np.flatnonzero((record["obs"] == sequences.obs[t, column].numpy()).all(axis=-1).reshape(-1))[0]
            for t, column in zip(*np.nonzero(sequences.valid.numpy()))
        ]
        np.testing.assert_allclose(first.numpy(), collected.numpy().reshape(-1)[steps], rtol=0, atol=1e-6)


def test_masked_actions_are_never_drawn_and_scored_under_their_masks(tmp_path, monkeypatch):
    """MaskedGrid: at most 4 of 36 actions valid. No invalid action is taken, and the near-uniform first policy gives
    each stored action about 1/4 or more (over its valid actions), not 1/36."""
    from deeprl.envs.examples import MaskedGrid

    records = recorded_update(monkeypatch)
    monkeypatch.setattr(MaskedGrid, "invalid_actions", 0)
    deeprl.train(
        "ppo",
        "deeprl.envs.examples:MaskedGrid",
        seed=0,
        steps=256,
        run_dir=tmp_path / "run",
        recurrent="gru",
        n_envs=2,
        n_steps=64,
        batch_size=32,
        sequence_length=16,
        n_epochs=2,
        **QUICK,
    )
    assert MaskedGrid.invalid_actions == 0
    assert (records[0]["log_probs"] > np.log(1 / 4) - 0.05).all()


def test_a2c_trains_a_recurrent_policy_on_whole_rollouts(tmp_path, monkeypatch):
    """A2C's one batch: every copy's whole rollout as one sequence, from the state stored at its first step."""
    from deeprl.algos import a2c

    batches = []
    minibatches = SequenceRolloutBuffer.minibatches

    def recording(self, batch_size, rng, device="cpu"):
        for batch in minibatches(self, batch_size, rng, device):
            batches.append((batch, self.states[0].copy()))
            yield batch

    monkeypatch.setattr(SequenceRolloutBuffer, "minibatches", recording)
    agent = deeprl.train(
        "a2c", "CartPoleNoVel-v1", seed=0, steps=80, run_dir=tmp_path / "run", recurrent="lstm", n_envs=4, **QUICK
    )
    assert a2c.Config.n_steps == 5 and len(batches) == 2 * 4  # per update: scoring, then the gradient step
    for batch, first_states in batches:
        assert batch.obs.obs.shape[:2] == (5, 4) and batch.obs.valid.all()
        assert np.array_equal(batch.obs.initial_states.numpy(), first_states)
    assert any((first_states != 0).any() for _, first_states in batches)  # states carried across rollouts
    assert isinstance(deeprl.load(agent.run_dir), RecurrentAgent)


def deeprl_network(run_dir) -> dict:
    return deeprl.load(run_dir).network


@pytest.mark.parametrize(
    ("env_id", "cell", "critic"), [("CartPoleNoVel-v1", "gru", "separate"), ("PendulumNoVel-v1", "lstm", "shared")]
)
def test_load_act_and_reset(tmp_path, env_id, cell, critic):
    """A GRU with a critic cell of its own, an LSTM whose critic reads the actor's (both 2 state parts of 64)."""
    agent = deeprl.train(
        "ppo",
        env_id,
        seed=1,
        steps=64,
        run_dir=tmp_path / "run",
        recurrent=cell,
        recurrent_critic=critic,
        n_envs=1,
        n_steps=32,
        **QUICK,
    )
    loaded = deeprl.load(tmp_path / "run" / "policy.pt")
    assert isinstance(loaded, RecurrentAgent) and loaded.network["recurrent"] == cell
    assert (loaded.policy.critic_cell is None) == (critic == "shared")
    observations = np.random.default_rng(0).normal(size=(6, 3, 2)).astype(np.float32)
    for one in (agent, loaded):
        one.reset()
    # the same observations, the same states and actions: the file rebuilt the network
    for obs in observations:
        assert np.array_equal(agent.act(obs), loaded.act(obs))
        assert torch.equal(agent.state, loaded.state)
    assert agent.state.shape == (3, 2, 64) and (agent.state != 0).all()
    reached = loaded.state.clone()
    loaded.reset([1])  # copy 1 begins again; the others carry on
    assert (loaded.state[1] == 0).all() and torch.equal(loaded.state[[0, 2]], reached[[0, 2]])
    loaded.reset()
    first = [loaded.act(obs[0]) for obs in observations]  # one observation: one copy of its own
    assert loaded.state.shape == (1, 2, 64)
    assert all(isinstance(action, int) if cell == "gru" else action.shape == (1,) for action in first)
    loaded.reset()
    assert np.array_equal([loaded.act(obs[0]) for obs in observations], first)
    with pytest.raises(deeprl.errors.DeeprlError, match="keeps a state for 1 env copies and was given 3"):
        loaded.act(observations[0])
    loaded.act(observations[0, :1], episode_start=[True])  # a copy told its episode begins starts from zeros
    restarted = loaded.state.clone()
    loaded.reset()
    loaded.act(observations[0, :1])
    assert torch.equal(loaded.state, restarted)


def test_policy_files_written_with_cell_weight_names_load(tmp_path):
    """Files from before the cells ran as nn.LSTM name its weights as nn.LSTMCell does (weight_ih, not weight_ih_l0):
    such a file loads and acts as the file of today."""
    deeprl.train(
        "ppo", "CartPoleNoVel-v1", seed=3, steps=64, run_dir=tmp_path / "run", recurrent="lstm", n_envs=1, n_steps=32,
        **QUICK,
    )  # fmt: skip
    blob = torch.load(tmp_path / "run" / "policy.pt", weights_only=True)
    renamed = {name.removesuffix("_l0"): tensor for name, tensor in blob["state_dict"].items()}
    assert "actor_cell.cell.weight_ih" in renamed and "critic_cell.cell.bias_hh" in renamed
    torch.save({**blob, "state_dict": renamed}, tmp_path / "cell_names.pt")
    today, earlier = deeprl.load(tmp_path / "run" / "policy.pt"), deeprl.load(tmp_path / "cell_names.pt")
    for obs in np.random.default_rng(0).normal(size=(5, 2, 2)).astype(np.float32):
        assert np.array_equal(today.act(obs), earlier.act(obs))
        assert torch.equal(today.state, earlier.state)


def test_evaluation_and_watch_reset_the_state_at_each_episode_start(tmp_path):
    """Episodes evaluated in parallel, two of them per slot, score what each scores alone from a fresh state."""
    deeprl.train(
        "ppo",
        "CartPoleNoVel-v1",
        seed=2,
        steps=64,
        run_dir=tmp_path / "run",
        recurrent="lstm",
        n_envs=1,
        n_steps=32,
        **QUICK,
    )
    agent = deeprl.load(tmp_path / "run")
    together = deeprl.evaluate(agent, "CartPoleNoVel-v1", episodes=5, seed=7, parallel=2)
    alone = []
    for episode in range(5):
        env = gym.make("CartPoleNoVel-v1")
        obs, _ = env.reset(seed=7 + episode)
        agent.reset()
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
            total, done = total + reward, terminated or truncated
        alone.append(total)
    assert together.returns.tolist() == alone
    from deeprl.media import play_frames

    _, returns = play_frames(agent, lambda **kw: gym.make("CartPoleNoVel-v1", **kw), episodes=2, seed=7)
    assert returns == alone[:2]


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_partially_observed_envs():
    for env_id, kept, full_id in (
        ("CartPoleNoVel-v1", [0, 2], "CartPole-v1"),
        ("PendulumNoVel-v1", [0, 1], "Pendulum-v1"),
    ):
        env, full = gym.make(env_id), gym.make(full_id)
        assert env.spec.max_episode_steps == full.spec.max_episode_steps
        assert env.spec.reward_threshold == full.spec.reward_threshold
        obs, _ = env.reset(seed=3)
        full_obs, _ = full.reset(seed=3)
        assert obs.shape == (2,) and np.array_equal(obs, full_obs[kept])
        action = full.action_space.sample()
        assert np.array_equal(env.step(action)[0], full.step(action)[0][kept])
    check_env(gym.make("CartPoleNoVel-v1").env)


@pytest.mark.learning
def test_memory_solves_cartpole_without_velocities_where_plain_ppo_cannot(tmp_path):
    """CartPoleNoVel-v1 within 20k steps (seed 0): a GRU policy balances the pole, an evaluation of 10 episodes
    reaching CartPole's threshold (475); the same PPO without memory, given as many steps, never scores 100. The
    preset's settings with 10 epochs instead of 20, lr and clip range constant, and an evaluation every 2048 steps.
    (Seeds 0-5 with these settings: five reach 475, at 8k-16k steps; the sixth 278.)"""
    settings = {
        "seed": 0,
        "steps": 20_000,
        "n_envs": 8,
        "n_steps": 32,
        "batch_size": 256,
        "n_epochs": 10,
        "gamma": 0.98,
        "gae_lambda": 0.8,
        "lr": 1e-3,
        "lr_end": None,
        "clip_range_end": None,
        "hidden_sizes": (64,),
        "activation": "relu",
        "orthogonal_init": False,
        "normalize_observations": True,
        "normalize_rewards": True,
        "tensorboard": False,
        "progress": False,
        "eval_every": 2048,
        "eval_episodes": 10,
        "final_eval_episodes": 10,
        "stop_on_solve": True,
        "torch_threads": 1,  # the numbers, and so the run, of one thread on any machine
    }
    memory = deeprl.train(
        "ppo", "CartPoleNoVel-v1", run_dir=tmp_path / "gru", recurrent="gru", recurrent_hidden_size=32, **settings
    )
    assert memory.summary["solved_at_step"] is not None and memory.summary["best"]["mean_return"] >= 475
    # given the steps the GRU policy needed
    plain_settings = {**settings, "steps": memory.summary["steps"]}
    plain = deeprl.train("ppo", "CartPoleNoVel-v1", run_dir=tmp_path / "plain", recurrent="none", **plain_settings)
    assert plain.summary["solved_at_step"] is None and plain.summary["best"]["mean_return"] < 100


RESUME_ARGS = [
    "--seed",
    "5",
    "--steps",
    "1152",
    "--quiet",
    "--set",
    "recurrent=lstm",
    "--set",
    "recurrent_hidden_size=16",
    "--set",
    "n_envs=3",
    "--set",
    "n_steps=32",
    "--set",
    "batch_size=48",
    "--set",
    "sequence_length=8",
    "--set",
    "n_epochs=2",
    "--set",
    "normalize_observations=true",
    "--set",
    "checkpoint_every=288",
    "--set",
    "eval_every=384",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "tensorboard=true",
]


@pytest.mark.resume
def test_sigkill_resumes_recurrent_ppo_exactly(tmp_path, uninterrupted):
    """Three copies killed mid-episode with their states: the resumed run is the uninterrupted one."""
    kill_and_resume(
        tmp_path,
        uninterrupted("ppo", "CartPoleNoVel-v1", RESUME_ARGS),
        RESUME_ARGS,
        576,
        algo="ppo",
        env="CartPoleNoVel-v1",
        tags=("train/return", "update/policy_loss", "update/approx_kl", "eval/return"),
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("algo", "settings", "message"),
    [
        (
            "dqn",
            ["recurrent=lstm"],
            "unknown setting 'recurrent' for dqn: 'recurrent' is a setting of a2c, ppo, not dqn",
        ),
        ("sac", ["recurrent_hidden_size=32"], "'recurrent_hidden_size' is a setting of a2c, ppo, not sac"),
        (
            "ppo",
            ["recurrent=lstm", "value_network=shared"],
            "value_network=shared puts the value head on the policy's trunk, but recurrent_critic=separate",
        ),
        (
            "ppo",
            ["recurrent=gru", "n_steps=64", "n_envs=2", "batch_size=16", "sequence_length=64"],
            "sequence_length 64 cuts the rollout (2 copies x 64 steps) into 2 sequences, fewer than the 8 minibatches",
        ),
    ],
)
def test_bad_recurrent_settings_are_one_line(tmp_path, algo, settings, message):
    env = "Pendulum-v1" if algo == "sac" else "CartPoleNoVel-v1"
    args = [arg for setting in settings for arg in ("--set", setting)]
    result = run_deeprl("train", algo, env, "--run-dir", "x", "--steps", "64", *args, cwd=tmp_path)
    assert message in one_line_error(result)
    assert list(tmp_path.iterdir()) == []
