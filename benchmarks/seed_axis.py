"""What a leading seed axis would save: K seeds' DQN updates on CartPole-v1's preset network (4-64-64-2, batch 128,
Adam, Double DQN targets) done one seed after another, against one update of K networks stacked on a leading axis
(weights (K, out, in), batched matrix products). Also the acting step: K observations, one per seed.

    python benchmarks/seed_axis.py [--seeds 1,2,5,10,20] [--repeats 300]

Prints the milliseconds per update (and per act) of each way and their ratio, on one torch thread as deeprl trains,
and how far the two ways' numbers part: Q-values of the same weights, and the weights after ten updates of each.
The stacked update computes each seed's loss on its own batch and sums them, so each seed's gradient is its own (Adam
is elementwise): the same algorithm per seed, not an approximation.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from torch import nn

SIZES = (4, 64, 64, 2)
BATCH = 128
GAMMA = 0.99


def single_net() -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(SIZES)):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(SIZES) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class StackedMLP(nn.Module):
    """K MLPs in one: layer i's weights are (K, out, in); an input (K, B, in) gives (K, B, out)."""

    def __init__(self, nets: list[nn.Sequential]) -> None:
        super().__init__()
        linears = [[layer for layer in net if isinstance(layer, nn.Linear)] for net in nets]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([layers[i].weight.detach().transpose(0, 1) for layers in linears]))
            for i in range(len(SIZES) - 1)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([layers[i].bias.detach().unsqueeze(0) for layers in linears]))
            for i in range(len(SIZES) - 1)
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = inputs
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if index < len(self.weights) - 1:
                hidden = torch.relu(hidden)
        return hidden


def batch(seeds: int) -> tuple[torch.Tensor, ...]:
    """One replay sample per seed: observations, actions, rewards, next observations, terminal flags."""
    return (
        torch.randn(seeds, BATCH, SIZES[0]),
        torch.randint(0, SIZES[-1], (seeds, BATCH, 1)),
        torch.randn(seeds, BATCH),
        torch.randn(seeds, BATCH, SIZES[0]),
        torch.zeros(seeds, BATCH),
    )


def td_loss(online, target, obs, actions, rewards, next_obs, terminal) -> torch.Tensor:
    """Double DQN's Huber loss, averaged over each seed's batch and summed over seeds (the leading axis)."""
    with torch.no_grad():
        best = online(next_obs).argmax(dim=-1, keepdim=True)
        next_q = target(next_obs).gather(-1, best).squeeze(-1)
        targets = rewards + GAMMA * (1 - terminal) * next_q
    q = online(obs).gather(-1, actions).squeeze(-1)
    return nn.functional.smooth_l1_loss(q, targets, reduction="none").mean(dim=-1).sum()


def time_per_call(work, repeats: int) -> float:
    for _ in range(20):
        work()
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    return (time.perf_counter() - started) / repeats * 1000


def measure(seeds: int, repeats: int) -> dict[str, float]:
    nets = [(single_net(), single_net()) for _ in range(seeds)]
    optimizers = [torch.optim.Adam(online.parameters(), lr=1e-3) for online, _ in nets]
    stacked, stacked_target = StackedMLP([online for online, _ in nets]), StackedMLP([target for _, target in nets])
    probe = torch.randn(seeds, BATCH, SIZES[0])
    with torch.no_grad():  # the same K functions: each seed's slice computes its own network
        alone = torch.stack([online(probe[index]) for index, (online, _) in enumerate(nets)])
        difference = (stacked(probe) - alone).abs().max().item()
    stacked_optimizer = torch.optim.Adam(stacked.parameters(), lr=1e-3)
    samples = batch(seeds)

    def one_after_another() -> None:
        for index, ((online, target), optimizer) in enumerate(zip(nets, optimizers, strict=True)):
            loss = td_loss(online, target, *(part[index] for part in samples))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def stacked_update() -> None:
        loss = td_loss(stacked, stacked_target, *samples)
        stacked_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stacked_optimizer.step()

    observations = torch.randn(seeds, 1, SIZES[0])

    def act_one_after_another() -> None:
        with torch.inference_mode():
            for index, (online, _) in enumerate(nets):
                online(observations[index]).argmax(dim=-1)

    def act_stacked() -> None:
        with torch.inference_mode():
            stacked(observations).argmax(dim=-1)

    # ten updates each way from the same weights on the same samples: how far apart the weights end
    for _ in range(10):
        one_after_another()
        stacked_update()
    linears = [[layer for layer in online if isinstance(layer, nn.Linear)] for online, _ in nets]
    drift = max(
        (stacked.weights[layer][index].detach() - linears[index][layer].weight.detach().t()).abs().max().item()
        for index in range(seeds)
        for layer in range(len(SIZES) - 1)
    )
    return {
        "difference": difference,
        "drift": drift,
        "update_sequential": time_per_call(one_after_another, repeats),
        "update_stacked": time_per_call(stacked_update, repeats),
        "act_sequential": time_per_call(act_one_after_another, repeats),
        "act_stacked": time_per_call(act_stacked, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,5,10,20", help="numbers of seeds to measure")
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(
        "| seeds | update: one after another (ms) | stacked (ms) | ratio | act: one after another (ms) | stacked (ms) "
        "| largest difference in Q | in weights after 10 updates |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seeds in (int(text) for text in args.seeds.split(",")):
        times = measure(seeds, args.repeats)
        print(
            f"| {seeds} | {times['update_sequential']:.2f} | {times['update_stacked']:.2f} | "
            f"{times['update_stacked'] / times['update_sequential']:.2f} | {times['act_sequential']:.3f} | "
            f"{times['act_stacked']:.3f} | {times['difference']:.1e} | {times['drift']:.1e} |"
        )


if __name__ == "__main__":
    main()
