"""Offline pre-training from demonstrations (ALGORITHM.md, "Pre-training").

1. The diffusion policy by noise matching on (observation, action chunk) pairs, with EMA
   weights for acting.
2. The IQL critic, warm-started on the demonstrations' chunked transitions.
3. The potentials: dual steps on the same data with the expert keypoints, so H is usable
   from the first online decision (``warmup_steps`` of them).

Everything is normalised here: observations and single actions to [-1, 1] with the
dataset's min-max stats (a chunk is its actions normalised one by one).
"""

import time
from dataclasses import dataclass

import numpy as np
import torch

from otpr_ros.core.agent import OTPRAgent
from otpr_ros.core.config import OTPRConfig
from otpr_ros.core.layers import scheduled_rate
from otpr_ros.core.replay_buffer import ReplayBuffer

OBS_CLIP = 5.0        # as the acting policy clips normalised observations


@dataclass
class PretrainResult:
    agent: OTPRAgent
    buffer: ReplayBuffer
    obs_normalizer: object
    action_normalizer: object
    stats: dict


def normalise_chunks(normalizer, chunks: np.ndarray, act_dim: int) -> np.ndarray:
    return normalizer.normalize(chunks.reshape(len(chunks), -1, act_dim)).reshape(len(chunks), -1)


def expert_buffer(dataset, config: OTPRConfig, obs_normalizer, action_normalizer, device) -> ReplayBuffer:
    transitions = dataset.chunk_transitions(config.chunk, config.critic.gamma, config.agent.execute_steps)
    buffer = ReplayBuffer(config.obs_dim, config.action_dim, config.buffer_capacity,
                          max(config.expert_capacity, len(transitions["obs"])), device)
    buffer.add_expert(obs_normalizer.normalize(transitions["obs"]).astype(np.float32),
                      normalise_chunks(action_normalizer, transitions["action"], config.act_dim).astype(np.float32),
                      transitions["reward"], obs_normalizer.normalize(transitions["next_obs"]).astype(np.float32),
                      transitions["terminal"], transitions["steps"], transitions["mc_return"])
    return buffer


def held_out_episodes(dataset, config: OTPRConfig, obs_normalizer, action_normalizer, device) -> list:
    """``dataset``'s demonstrations as normalised tensors for ``value_error`` (the critic's
    diagnostic): give it episodes the critic never trained on, e.g. the files' valid split."""
    return [(torch.as_tensor(np.clip(obs_normalizer.normalize(obs), -OBS_CLIP, OBS_CLIP), dtype=torch.float32,
                             device=device),
             torch.as_tensor(normalise_chunks(action_normalizer, chunks, config.act_dim), dtype=torch.float32,
                             device=device),
             torch.as_tensor(returns, dtype=torch.float32, device=device))
            for obs, chunks, returns in dataset.chunked_episodes(config.chunk, config.critic.gamma)]


def pretrain(dataset, config: OTPRConfig, policy_steps: int, critic_steps: int, batch_size: int = 256,
             log=None, progress=None, quaternions=(), init=None) -> PretrainResult:
    """``log(tag, value, step)`` receives scalars; ``progress(n)`` is called once per step;
    ``quaternions``: starts of sign-free quaternions in the observation (the task's);
    ``init``: a loaded model (``load_model``) whose policy (its weights and EMA weights) and
    normalisers the policy's steps go on from (the critic and potentials start afresh)."""
    agent = OTPRAgent(config)
    device, generator = agent.device, agent.generator
    if init is None:
        obs_normalizer, action_normalizer = dataset.normalizers(quaternions)
    else:
        obs_normalizer, action_normalizer = init.obs_normalizer, init.action_normalizer
        agent.policy.load_state_dict(init.agent.policy.state_dict())
    obs, chunks = dataset.imitation_pairs(config.chunk)
    obs_t = torch.as_tensor(obs_normalizer.normalize(obs), dtype=torch.float32, device=device)
    chunks_t = torch.as_tensor(normalise_chunks(action_normalizer, chunks, config.act_dim), dtype=torch.float32,
                               device=device)
    stats = {"pairs": len(obs_t), "policy_steps": policy_steps, "critic_steps": critic_steps}

    # 1. diffusion policy
    optimizer = torch.optim.AdamW(agent.policy.net.parameters(), lr=config.diffusion.pretrain_lr,
                                  weight_decay=config.diffusion.weight_decay)
    start = time.perf_counter()
    for step in range(policy_steps):
        for group in optimizer.param_groups:
            group["lr"] = scheduled_rate(config.diffusion.pretrain_lr, config.diffusion.pretrain_lr_schedule,
                                         step / policy_steps)
        index = torch.randint(0, len(obs_t), (batch_size,), device=device, generator=generator)
        loss = agent.policy.noise_matching_loss(obs_t[index], chunks_t[index], generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        agent.policy.update_ema(config.diffusion.ema_decay)
        if log and step % 50 == 0:
            log("pretrain/noise_matching_loss", loss.item(), step)
            log("pretrain/lr", optimizer.param_groups[0]["lr"], step)
        if progress:
            progress(1)
    stats["policy_seconds"] = time.perf_counter() - start
    stats["final_noise_matching_loss"] = loss.item() if policy_steps else None

    # 2. critic, 3. potentials (warm-up), on the chunked demonstrations with keypoints
    buffer = expert_buffer(dataset, config, obs_normalizer, action_normalizer, device)
    buffer.select_keypoints(min(config.transport.num_keypoints, buffer.expert.size - 1), generator)
    agent.set_keypoints(buffer.keypoint_obs, buffer.keypoint_actions)
    for step in range(critic_steps):
        metrics = agent.critic_step(buffer)
        if log and step % 50 == 0:
            for tag, value in metrics.items():
                log(tag, value, step)
        if progress:
            progress(1)
    for step in range(config.transport.warmup_steps):
        metrics = agent.dual_step(buffer)
        if log and step % 50 == 0:
            log("transport/dual_objective", metrics["transport/dual_objective"], step)
        if progress:
            progress(1)
    stats["dual_steps"] = agent.dual_steps
    return PretrainResult(agent, buffer, obs_normalizer, action_normalizer, stats)
