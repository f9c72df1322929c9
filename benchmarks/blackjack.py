"""Blackjack-v1 (a Tuple of three Discrete observations): deeprl's PPO and DQN against the basic strategy.

    python benchmarks/blackjack.py [--algos ppo,dqn] [--seeds 0-2] [--hands 10000] [--steps N]

Each (algorithm, seed) trains with the algorithm's `default` Blackjack-v1 preset (or `--steps`), then its final
policy and the basic strategy play the same 10 000 fresh hands (reset seeds 5_000_000 + i, which neither training
nor its evaluations use; the same seed deals the same cards to both, so their difference is measured more precisely
than either return). Gymnasium's Blackjack-v1 lets the player only hit or stick (no doubling, no splitting) and its
dealer stands on every 17; the basic strategy for those rules:

- with a usable ace (soft total): stick on 19 or more, and on 18 against a dealer's 2 to 8; hit otherwise;
- without (hard total): stick on 17 or more, on 13 to 16 against a dealer's 2 to 6, on 12 against 4 to 6; hit below.

It is the optimal policy: the script checks it against dynamic programming over Blackjack-v1's infinite deck, which
also gives its exact expected return (-0.0466 a hand; a random policy's is about -0.40).

Prints a Markdown table: each run's mean return per hand, its difference from the basic strategy on the same hands
(with the standard error of that difference) and its training time.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import deeprl
from deeprl.observations import ObservationEncoder

ENV = "Blackjack-v1"
HAND_SEED = 5_000_000  # far from the seeds training (0..) and its evaluations (1_000_000.., 2_000_000..) use


def basic_strategy(player_sum: int, dealer_card: int, usable_ace: int) -> int:
    """1 (hit) or 0 (stick) for Blackjack-v1's rules (see the module docstring); the dealer's ace is 1."""
    dealer = 11 if dealer_card == 1 else dealer_card
    if usable_ace:
        return int(not (player_sum >= 19 or (player_sum == 18 and dealer <= 8)))
    if player_sum >= 17:
        return 0
    if 13 <= player_sum <= 16:
        return int(dealer > 6)
    if player_sum == 12:
        return int(not 4 <= dealer <= 6)
    return 1


# Blackjack-v1 deals from an infinite deck: each of 1 (ace) to 9 with probability 1/13, a ten-valued card 4/13.
CARD_PROBABILITIES = {card: (4 if card == 10 else 1) / 13 for card in range(1, 11)}


def best_value(total: int, has_ace: bool) -> int:
    """A hand's value: its cards (aces as 1) plus 10 for an ace where that does not bust it."""
    return total + 10 if has_ace and total + 10 <= 21 else total


@functools.cache
def dealer_finals(total: int, has_ace: bool) -> dict[int, float]:
    """The dealer's final values from a hand, drawing below 17 (22 stands for any bust) -> probabilities."""
    value = best_value(total, has_ace)
    if value >= 17:
        return {min(value, 22): 1.0}
    finals: dict[int, float] = {}
    for card, probability in CARD_PROBABILITIES.items():
        for final, p in dealer_finals(min(total + card, 22), has_ace or card == 1).items():
            finals[final] = finals.get(final, 0.0) + probability * p
    return finals


@functools.cache
def optimal(total: int, has_ace: bool, dealer_card: int) -> tuple[float, int]:
    """(the best expected return, the action reaching it: 1 hit, 0 stick) of a player's hand against a dealer's card,
    by dynamic programming over the cards still to come."""
    value = best_value(total, has_ace)
    dealer = {}
    for card, probability in CARD_PROBABILITIES.items():  # the dealer's hidden card, then the dealer's draws
        for final, p in dealer_finals(dealer_card + card, dealer_card == 1 or card == 1).items():
            dealer[final] = dealer.get(final, 0.0) + probability * p
    stick = sum(
        p * (1.0 if final == 22 or value > final else 0.0 if value == final else -1.0) for final, p in dealer.items()
    )
    hit = sum(
        probability * (-1.0 if total + card > 21 else optimal(total + card, has_ace or card == 1, dealer_card)[0])
        for card, probability in CARD_PROBABILITIES.items()
    )
    return max(stick, hit), int(hit > stick)


def basic_strategy_expected_return() -> float:
    """The basic strategy's exact expected return per hand, after checking that it is the optimal policy in every
    state a hand can reach."""
    for total in range(2, 22):
        for has_ace in (False, True):
            for dealer_card in range(1, 11):
                usable = int(has_ace and total + 10 <= 21)
                action = basic_strategy(best_value(total, has_ace), dealer_card, usable)
                assert action == optimal(total, has_ace, dealer_card)[1], (total, has_ace, dealer_card)
    return sum(
        p1 * p2 * p3 * optimal(first + second, 1 in (first, second), dealer_card)[0]
        for first, p1 in CARD_PROBABILITIES.items()
        for second, p2 in CARD_PROBABILITIES.items()
        for dealer_card, p3 in CARD_PROBABILITIES.items()
    )


class BasicStrategyAgent:
    """The basic strategy as an agent: it reads the encoded observations deeprl's Blackjack env gives (the one-hot
    player sum, dealer card and usable ace, decoded back by their argmax)."""

    def __init__(self) -> None:
        import gymnasium as gym

        self.action_space = gym.spaces.Discrete(2)
        source = gym.make(ENV).observation_space
        self.observation_space = ObservationEncoder(source).space
        self.sizes = [int(space.n) for space in source.spaces]

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        batch = np.atleast_2d(obs)
        edges = np.cumsum([0, *self.sizes])
        player, dealer, ace = (batch[:, edges[i] : edges[i + 1]].argmax(axis=1) for i in range(3))
        return np.array([basic_strategy(*hand) for hand in zip(player, dealer, ace)])


def play(agent: object, hands: int) -> np.ndarray:
    return deeprl.evaluate(agent, ENV, episodes=hands, seed=HAND_SEED, parallel=64).returns


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="ppo,dqn")
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--hands", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=None, help="training budget (default: the preset's)")
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}\n")
    reference = play(BasicStrategyAgent(), args.hands)
    print(f"basic strategy: {basic_strategy_expected_return():+.4f} per hand expected (exactly; the optimal policy)")
    print(f"basic strategy on these hands: {reference.mean():+.4f} per hand over {args.hands} hands\n")
    print("| algo | seed | steps | train s | mean return | minus basic strategy (± s.e.) |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as scratch:
        for algo in args.algos.split(","):
            for seed in parse_seeds(args.seeds):
                run_dir = Path(scratch) / f"{algo}-{seed}"
                started = time.perf_counter()
                deeprl.train(algo, ENV, seed=seed, steps=args.steps, run_dir=run_dir, progress=False)
                seconds = time.perf_counter() - started
                returns = play(deeprl.load(run_dir / "policy.pt"), args.hands)
                difference = returns - reference
                error = difference.std(ddof=1) / np.sqrt(len(difference))
                steps = deeprl.load(run_dir / "policy.pt").policy_step
                print(
                    f"| {algo} | {seed} | {steps} | {seconds:.0f} | {returns.mean():+.4f} | "
                    f"{difference.mean():+.4f} ± {error:.4f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
