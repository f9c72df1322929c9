"""ReplayBuffer: ring wrap-around, sampling bounds, and n-step targets against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeprl.buffers import ReplayBuffer, to_device

GAMMA = 0.5  # powers of 1/2 are exact in float32, so targets compare exactly


def make_buffer(capacity: int) -> ReplayBuffer:
    return ReplayBuffer(capacity, (1,), np.dtype(np.float32))


def add_episode(
    buffer: ReplayBuffer, rewards, first_obs: float = 0.0, terminated_last: bool = False, truncated_last: bool = False
) -> None:
    """Transitions obs=t -> next_obs=t+1 (offset by `first_obs`), action t % 2, the given rewards."""
    for t, reward in enumerate(rewards):
        last = t == len(rewards) - 1
        buffer.add(
            [first_obs + t],
            t % 2,
            reward,
            [first_obs + t + 1],
            terminated=terminated_last and last,
            truncated=truncated_last and last,
        )


def test_wrap_around_overwrites_oldest():
    buffer = make_buffer(5)
    for t in range(7):
        buffer.add([float(t)], t % 2, float(10 * t), [float(t + 1)], terminated=False, truncated=False)
    assert buffer.position == 2
    assert buffer.size == 5
    assert len(buffer) == 5
    # slots 0 and 1 hold transitions 5 and 6; slots 2..4 still hold 2..4
    np.testing.assert_array_equal(buffer.obs[:, 0], [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(buffer.next_obs[:, 0], [6, 7, 3, 4, 5])
    np.testing.assert_array_equal(buffer.rewards, [50, 60, 20, 30, 40])
    np.testing.assert_array_equal(buffer.actions, [1, 0, 0, 1, 0])


def test_position_and_size_before_full():
    buffer = make_buffer(5)
    add_episode(buffer, [1.0, 2.0, 3.0])
    assert (buffer.position, buffer.size, len(buffer)) == (3, 3, 3)


def test_sampling_never_returns_unwritten_slots():
    buffer = make_buffer(100)
    add_episode(buffer, [1.0] * 7, first_obs=1.0)  # obs 1..7; unwritten slots hold obs 0
    rng = np.random.default_rng(0)
    batch = buffer.sample(2000, rng, n_step=1, gamma=0.9)
    assert batch.obs.shape == (2000, 1)
    assert set(batch.obs[:, 0].tolist()) == set(range(1, 8))  # every written slot is drawn, no unwritten one
    torch.testing.assert_close(batch.next_obs, batch.obs + 1)


def test_sampling_when_full_covers_whole_ring():
    buffer = make_buffer(6)
    add_episode(buffer, [1.0] * 15)  # the ring keeps obs 9..14
    batch = buffer.sample(3000, np.random.default_rng(1), n_step=3, gamma=0.9)
    assert set(batch.obs[:, 0].tolist()) == set(range(9, 15))


def test_sampling_is_reproducible_from_the_generator():
    buffer = make_buffer(50)
    add_episode(buffer, list(range(30)))
    first = buffer.sample(16, np.random.default_rng(7))
    second = buffer.sample(16, np.random.default_rng(7))
    assert first.obs[:, 0].unique().numel() > 8  # many slots drawn
    for name in ("obs", "actions", "returns", "next_obs", "discounts"):
        assert torch.equal(getattr(first, name), getattr(second, name))


def test_three_step_window_mid_episode():
    buffer = make_buffer(10)
    add_episode(buffer, [1.0, 2.0, 3.0, 4.0, 5.0])  # slots 0..4, one ongoing episode, newest is slot 4
    returns, last, discounts = buffer.nstep_targets(np.array([0, 1]), n_step=3, gamma=GAMMA)
    # slot 0: 1 + 0.5*2 + 0.25*3 = 2.75; slot 1: 2 + 0.5*3 + 0.25*4 = 4.5
    np.testing.assert_array_equal(returns, np.array([2.75, 4.5], dtype=np.float32))
    np.testing.assert_array_equal(last, [2, 3])
    np.testing.assert_array_equal(discounts, np.array([0.125, 0.125], dtype=np.float32))

    batch = buffer.batch_at(np.array([0]), n_step=3, gamma=GAMMA)
    assert batch.returns.dtype == torch.float32
    torch.testing.assert_close(batch.returns, torch.tensor([2.75]))
    torch.testing.assert_close(batch.discounts, torch.tensor([0.125]))
    torch.testing.assert_close(batch.obs, torch.tensor([[0.0]]))
    torch.testing.assert_close(batch.next_obs, torch.tensor([[3.0]]))  # next_obs of the third transition
    torch.testing.assert_close(batch.actions, torch.tensor([0]))


def test_window_stops_at_terminated_transition_without_bootstrap():
    buffer = make_buffer(10)
    add_episode(buffer, [1.0, 2.0], terminated_last=True)  # slots 0, 1; slot 1 ends in a terminal state
    add_episode(buffer, [100.0, 200.0, 300.0], first_obs=50.0)  # slots 2..4: the next episode
    returns, last, discounts = buffer.nstep_targets(np.array([0, 1]), n_step=3, gamma=GAMMA)
    np.testing.assert_array_equal(returns, np.array([1 + 0.5 * 2, 2.0], dtype=np.float32))
    np.testing.assert_array_equal(last, [1, 1])
    np.testing.assert_array_equal(discounts, [0.0, 0.0])


def test_window_stops_at_truncated_transition_but_bootstraps():
    buffer = make_buffer(10)
    add_episode(buffer, [1.0, 2.0], truncated_last=True)  # slot 1 ends by a time limit
    add_episode(buffer, [100.0, 200.0, 300.0], first_obs=50.0)
    returns, last, discounts = buffer.nstep_targets(np.array([0, 1]), n_step=3, gamma=GAMMA)
    np.testing.assert_array_equal(returns, np.array([2.0, 2.0], dtype=np.float32))
    np.testing.assert_array_equal(last, [1, 1])
    np.testing.assert_array_equal(discounts, np.array([0.25, 0.5], dtype=np.float32))  # gamma**m
    batch = buffer.batch_at(np.array([0]), n_step=3, gamma=GAMMA)
    torch.testing.assert_close(batch.next_obs, torch.tensor([[2.0]]))  # the truncated transition's next_obs


def test_window_stops_at_newest_transition():
    buffer = make_buffer(10)
    add_episode(buffer, [1.0, 2.0, 3.0])  # newest is slot 2; its successor is not stored yet
    returns, last, discounts = buffer.nstep_targets(np.array([1, 2]), n_step=3, gamma=GAMMA)
    np.testing.assert_array_equal(returns, np.array([2 + 0.5 * 3, 3.0], dtype=np.float32))
    np.testing.assert_array_equal(last, [2, 2])
    np.testing.assert_array_equal(discounts, np.array([0.25, 0.5], dtype=np.float32))


def test_window_crosses_the_ring_boundary():
    buffer = make_buffer(4)
    add_episode(buffer, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # transitions 4, 5 overwrite slots 0, 1
    assert buffer.position == 2
    # slot 3 holds transition 3 (reward 4); its window continues into slots 0 (reward 5) and 1 (reward 6)
    returns, last, discounts = buffer.nstep_targets(np.array([3]), n_step=3, gamma=GAMMA)
    np.testing.assert_array_equal(returns, np.array([4 + 0.5 * 5 + 0.25 * 6], dtype=np.float32))
    np.testing.assert_array_equal(last, [1])
    np.testing.assert_array_equal(discounts, np.array([0.125], dtype=np.float32))
    batch = buffer.batch_at(np.array([3]), n_step=3, gamma=GAMMA)
    torch.testing.assert_close(batch.next_obs, torch.tensor([[6.0]]))


def test_terminal_reached_on_the_last_step_of_a_full_window():
    buffer = make_buffer(10)
    add_episode(buffer, [1.0, 2.0, 3.0], terminated_last=True)
    add_episode(buffer, [7.0], first_obs=40.0)
    returns, last, discounts = buffer.nstep_targets(np.array([0]), n_step=3, gamma=GAMMA)
    np.testing.assert_array_equal(returns, np.array([2.75], dtype=np.float32))
    np.testing.assert_array_equal(last, [2])
    np.testing.assert_array_equal(discounts, [0.0])


@pytest.mark.parametrize("n_step", [1, 3])
def test_one_step_and_n_step_paths(n_step):
    buffer = make_buffer(10)
    buffer.add([0.0], 1, 1.5, [1.0], terminated=False, truncated=False)
    buffer.add([1.0], 0, 2.5, [2.0], terminated=True, truncated=False)
    buffer.add([10.0], 1, 3.5, [11.0], terminated=False, truncated=True)
    buffer.add([20.0], 0, 4.5, [21.0], terminated=False, truncated=False)
    batch = buffer.batch_at(np.array([0, 1, 2, 3]), n_step=n_step, gamma=GAMMA)
    if n_step == 1:
        expected_returns = [1.5, 2.5, 3.5, 4.5]
        expected_discounts = [0.5, 0.0, 0.5, 0.5]  # truncated still bootstraps with gamma
        expected_next = [1.0, 2.0, 11.0, 21.0]
    else:
        expected_returns = [1.5 + 0.5 * 2.5, 2.5, 3.5, 4.5]  # slot 3 is the newest
        expected_discounts = [0.0, 0.0, 0.5, 0.5]
        expected_next = [2.0, 2.0, 11.0, 21.0]
    torch.testing.assert_close(batch.returns, torch.tensor(expected_returns))
    torch.testing.assert_close(batch.discounts, torch.tensor(expected_discounts))
    torch.testing.assert_close(batch.next_obs[:, 0], torch.tensor(expected_next))
    torch.testing.assert_close(batch.actions, torch.tensor([1, 0, 1, 0]))
    assert batch.returns.dtype == batch.discounts.dtype == torch.float32


def test_batches_stay_in_their_dtype_and_share_the_array_on_the_cpu():
    """to_device, which every training batch goes through: pictures keep uint8 (the network scales them on its
    device), and on the CPU the tensor is the sampled array itself, not a copy; a strided array arrives contiguous.
    (The GPU path, through pinned memory, is checked by benchmarks/device_check.py where a GPU exists.)"""
    frames = np.arange(2 * 4 * 3 * 3, dtype=np.uint8).reshape(2, 4, 3, 3)
    tensor = to_device(frames, "cpu")
    assert tensor.dtype == torch.uint8 and tensor.device.type == "cpu"
    assert np.shares_memory(tensor.numpy(), frames)
    strided = frames[:, ::2]
    tensor = to_device(strided, torch.device("cpu"))
    assert tensor.is_contiguous() and np.array_equal(tensor.numpy(), strided)
