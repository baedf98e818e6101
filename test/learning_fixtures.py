"""Small problems with known answers, shared by the unit tests and the learning tests: a
contextual bandit with known best actions for the OTPR agent, and one state with five chunks
of known rewards for the critic."""

import torch
from scipy.optimize import brentq

from otpr_ros.core.agent import OTPRAgent
from otpr_ros.core.config import AgentConfig, CriticConfig, DiffusionConfig, OTPRConfig, TransportConfig
from otpr_ros.core.replay_buffer import ReplayBuffer, TransitionBatch


def small_agent(device="cpu", **transport) -> OTPRAgent:
    config = OTPRConfig(
        obs_dim=1, act_dim=2, chunk=1, device=device, seed=0,
        diffusion=DiffusionConfig(num_steps=10, hidden=(64, 64, 64), time_dim=16, finetune_lr=1e-3, ema_decay=0.9),
        critic=CriticConfig(hidden=(64, 64), lr=1e-3, gamma=0.9, batch_size=128, polyak=0.05),
        transport=TransportConfig(**({"hidden": (64, 64), "lr": 1e-3, "num_keypoints": 16, "batch_states": 64,
                                      "batch_actions": 64, "warmup_steps": 20, "lam": 0.1} | transport)),
        agent=AgentConfig(num_candidates=8, actor_batch=128),
    )
    return OTPRAgent(config)


# -- a contextual bandit whose best actions are known ---------------------------------------
CORNERS = torch.tensor([[0.5, 0.5], [-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]])


def best_action(states):
    """(0.5, 0.5) for s > 0, (-0.5, -0.5) otherwise."""
    return torch.where(states > 0, CORNERS[0], CORNERS[1])


def reward(states, actions):
    return torch.exp(-(actions - best_action(states)).pow(2).sum(-1) / 0.05)


def hit_rate(states, actions):
    return float(((actions - best_action(states)).norm(dim=-1) < 0.25).float().mean())


def filled_buffer(agent, generator=None, behaviour=512, expert=64):
    """Behaviour data: the four corners regardless of the state; expert data: the best corner."""
    generator = generator or torch.Generator().manual_seed(0)
    device = agent.device
    buffer = ReplayBuffer(1, 2, capacity=20_000, expert_capacity=expert, device=device)
    s = torch.rand(behaviour, 1, generator=generator) * 2 - 1
    a = CORNERS[torch.randint(0, 4, (behaviour,), generator=generator)] + 0.05 * torch.randn(behaviour, 2,
                                                                                              generator=generator)
    buffer.add(s, a, reward(s, a), s, torch.ones(behaviour), torch.ones(behaviour))
    s = torch.rand(expert, 1, generator=generator) * 2 - 1
    a = best_action(s) + 0.05 * torch.randn(expert, 2, generator=generator)
    buffer.add_expert(s, a, reward(s, a), s, torch.ones(expert), torch.ones(expert))
    buffer.select_keypoints(agent.config.transport.num_keypoints, torch.Generator(device=device).manual_seed(0))
    agent.set_keypoints(buffer.keypoint_obs, buffer.keypoint_actions)
    return buffer


def pretrain(agent, buffer, steps=1500):
    """Imitation of the behaviour data: the policy starts at ~25 % best actions."""
    optimizer = torch.optim.Adam(agent.policy.net.parameters(), lr=2e-3)
    for _ in range(steps):
        batch = buffer.sample(256, agent.generator)
        loss = agent.policy.noise_matching_loss(batch.obs, batch.action, generator=agent.generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    agent.policy.ema_net.load_state_dict(agent.policy.net.state_dict())


def fine_tune(agent, buffer, rounds=15, updates_per_round=20, episodes_per_round=64):
    generator = torch.Generator().manual_seed(1)
    for _ in range(rounds):
        s = torch.rand(episodes_per_round, 1, generator=generator) * 2 - 1
        a = agent.act(s, mode="sample").chunk
        n = s.shape[0]
        buffer.add(s, a, reward(s, a), s, torch.ones(n), torch.ones(n))
        for _ in range(updates_per_round):
            agent.update(buffer)


def policy_hit_rate(agent, n=2000):
    s = torch.linspace(-1, 1, n)[:, None]
    return hit_rate(s, agent.act(s, mode="single").chunk)


class UniformGuidance(OTPRAgent):
    """The same update with every candidate weighted equally."""

    def guidance_weights(self, states, candidates, stored_ids):
        return torch.full(candidates.shape[:2], 1.0 / candidates.shape[1], device=self.device)


# -- the critic: one state, five chunks with terminal rewards -----------------------------
REWARDS = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0])
PROBS = torch.tensor([0.3, 0.3, 0.2, 0.1, 0.1])
ACTIONS = torch.eye(5)  # five distinct "chunks"


def exact_expectile(values, probs, tau):
    def balance(e):
        weight = torch.where(values < e, 1 - tau, tau)
        return float((probs * weight * (values - e)).sum())
    return brentq(balance, float(values.min()), float(values.max()))


def batch_from(obs, action, reward, next_obs, terminal, steps):
    return TransitionBatch(obs, action, reward, next_obs, terminal, steps)
