"""ReplayBuffer(shared_next_obs=True), which stores each picture once: it must sample exactly what a plain
buffer fed the same transitions samples, through ring wrap-arounds, episode ends and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeprl.buffers import ReplayBuffer

OBS_SHAPE = (1, 2, 2)
GAMMA = 0.5


def transition_stream(seed: int, count: int):
    """`count` transitions of consecutive episodes (random lengths 1-7) as an env would give them: each
    observation is new (a running number spread over the picture's pixels), next_obs is the following
    transition's obs within an episode, and an episode ends terminated, truncated or both."""
    rng = np.random.default_rng(seed)
    counter = 0

    def picture() -> np.ndarray:
        nonlocal counter
        counter += 1
        return (counter + np.arange(4, dtype=np.float32).reshape(OBS_SHAPE) / 10).astype(np.float32)

    produced = 0
    while produced < count:
        obs = picture()
        length = int(rng.integers(1, 8))
        ending = rng.choice(["terminated", "truncated", "both"], p=[0.4, 0.4, 0.2])
        for t in range(length):
            next_obs = picture()
            last = t == length - 1
            terminated = last and ending in ("terminated", "both")
            truncated = last and ending in ("truncated", "both")
            yield obs, int(rng.integers(3)), float(rng.integers(-4, 5)), next_obs, terminated, truncated
            produced += 1
            if produced == count:
                return
            obs = next_obs


def buffers(capacity: int) -> tuple[ReplayBuffer, ReplayBuffer]:
    shared = ReplayBuffer(capacity, OBS_SHAPE, np.dtype(np.float32), shared_next_obs=True)
    plain = ReplayBuffer(capacity, OBS_SHAPE, np.dtype(np.float32))
    return shared, plain


def assert_same_batches(shared: ReplayBuffer, plain: ReplayBuffer, indices: np.ndarray, n_step: int) -> None:
    got = shared.batch_at(indices, n_step, GAMMA)
    want = plain.batch_at(indices, n_step, GAMMA)
    for name in ("obs", "actions", "returns", "discounts"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=0, atol=0)
    # a terminal successor (discount 0) is never bootstrapped from, so the shared buffer need not keep it
    bootstrapped = want.discounts > 0
    assert got.next_obs.shape == want.next_obs.shape
    torch.testing.assert_close(got.next_obs[bootstrapped], want.next_obs[bootstrapped], rtol=0, atol=0)


@pytest.mark.parametrize("capacity", [1, 4, 11])
def test_shared_buffer_samples_what_a_plain_buffer_samples(capacity):
    shared, plain = buffers(capacity)
    count = 6 * capacity + 13  # wraps around the ring several times
    bootstraps_seen = 0
    for transition in transition_stream(seed=capacity, count=count):
        shared.add(*transition)
        plain.add(*transition)
        assert (shared.position, shared.size) == (plain.position, plain.size)
        indices = np.arange(shared.size)  # every valid slot, after every add (the newest is often mid-episode)
        for n_step in (1, 3, capacity + 2):
            assert_same_batches(shared, plain, indices, n_step)
        bootstraps_seen += int(np.sum(plain.batch_at(indices, 3, GAMMA).discounts.numpy() > 0))
    assert bootstraps_seen > count // 2  # the comparison of next_obs covered plenty of transitions


@pytest.mark.parametrize("capacity", [1, 4, 11])
def test_the_streams_cover_every_kind_of_end(capacity):
    """The comparison above sees terminations, truncations and both at once, and mostly mid-episode adds."""
    ends = {"terminated": 0, "truncated": 0, "both": 0}
    mid_episode = 0
    count = 6 * capacity + 13
    for _, _, _, _, terminated, truncated in transition_stream(seed=capacity, count=count):
        if terminated and truncated:
            ends["both"] += 1
        elif terminated:
            ends["terminated"] += 1
        elif truncated:
            ends["truncated"] += 1
        else:
            mid_episode += 1
    assert min(ends.values()) >= 1, ends
    assert mid_episode > count // 2


def test_truncated_successor_is_kept_until_its_slot_is_overwritten():
    """Hand-made: the final observation of a truncated episode is not the next slot's observation."""
    shared, _ = buffers(3)
    obs = [np.full(OBS_SHAPE, value, dtype=np.float32) for value in range(10)]
    shared.add(obs[0], 0, 1.0, obs[1], terminated=False, truncated=False)
    shared.add(obs[1], 1, 2.0, obs[2], terminated=False, truncated=True)  # final observation 2
    shared.add(obs[5], 2, 3.0, obs[6], terminated=False, truncated=False)  # the next episode starts at 5
    assert set(shared.final_obs) == {1}
    batch = shared.batch_at(np.array([0, 1, 2]), 1, GAMMA)
    np.testing.assert_array_equal(batch.next_obs[:, 0, 0, 0].numpy(), [1.0, 2.0, 6.0])
    np.testing.assert_array_equal(batch.discounts.numpy(), [GAMMA, GAMMA, GAMMA])
    # n = 3 from slot 0: rewards 1 + 0.5 * 2, stopping at the truncation, bootstrapping from obs 2
    batch = shared.batch_at(np.array([0]), 3, GAMMA)
    np.testing.assert_array_equal(batch.returns.numpy(), [2.0])
    np.testing.assert_array_equal(batch.discounts.numpy(), [0.25])
    np.testing.assert_array_equal(batch.next_obs[0, 0, 0, 0].item(), 2.0)
    shared.add(obs[6], 0, 4.0, obs[7], terminated=False, truncated=False)  # overwrites slot 0
    shared.add(obs[7], 0, 5.0, obs[8], terminated=True, truncated=False)  # overwrites slot 1
    assert shared.final_obs == {}
    assert shared.terminated[1] and shared.episode_end[1]


@pytest.mark.parametrize("capacity", [4, 11])
def test_shared_buffer_stores_each_picture_once(capacity):
    shared, plain = buffers(capacity)
    assert shared.next_obs.shape == (0, *OBS_SHAPE)
    assert shared.next_obs.nbytes == 0
    assert plain.next_obs.nbytes == plain.obs.nbytes == capacity * 4 * 4
    for obs, action, reward, next_obs, terminated, truncated in transition_stream(seed=5, count=5 * capacity + 3):
        shared.add(obs, action, reward, next_obs, terminated, truncated)
        written = np.arange(shared.size)
        truncated_ends = written[shared.episode_end[written] & ~shared.terminated[written]]
        # only truncated ends still in the buffer keep a final observation, and each of them does
        assert set(shared.final_obs) == set(truncated_ends.tolist())
        plain.add(obs, action, reward, next_obs, terminated, truncated)
        for slot, final in shared.final_obs.items():
            np.testing.assert_array_equal(final, plain.next_obs[slot])
    assert len(shared.final_obs) < capacity
    assert shared.next_obs.nbytes == 0


def fill(buffer: ReplayBuffer, seed: int, count: int) -> None:
    for transition in transition_stream(seed, count):
        buffer.add(*transition)


@pytest.mark.parametrize(("seed", "count"), [(4, 7), (2, 53)])  # part-filled, and wrapped several times
def test_state_dict_round_trip_through_a_file(tmp_path, seed, count):
    capacity = 11
    original, _ = buffers(capacity)
    fill(original, seed=seed, count=count)
    assert original.final_obs  # the stream left truncated ends in the buffer, to be restored too
    path = tmp_path / "replay.pt"
    torch.save(original.state_dict(), path)
    restored, _ = buffers(capacity)
    restored.load_state_dict(torch.load(path, weights_only=True))

    assert (restored.position, restored.size) == (original.position, original.size)
    assert set(restored.final_obs) == set(original.final_obs)
    indices = np.arange(original.size)
    for n_step in (1, 3):
        assert_same_batches(restored, original, indices, n_step)
        torch.testing.assert_close(
            restored.batch_at(indices, n_step, GAMMA).next_obs,
            original.batch_at(indices, n_step, GAMMA).next_obs,
            rtol=0,
            atol=0,
        )
    first = original.sample(64, np.random.default_rng(4), n_step=3, gamma=GAMMA)
    second = restored.sample(64, np.random.default_rng(4), n_step=3, gamma=GAMMA)
    for name in ("obs", "actions", "returns", "next_obs", "discounts"):
        torch.testing.assert_close(getattr(second, name), getattr(first, name), rtol=0, atol=0)

    # both go on identically from where the checkpoint was taken (the pending successor included)
    for transition in transition_stream(seed=99, count=15):
        original.add(*transition)
        restored.add(*transition)
        assert_same_batches(restored, original, np.arange(original.size), 3)
