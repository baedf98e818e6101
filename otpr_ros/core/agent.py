"""The OTPR agent: acting by compatibility resampling, learning by the loop of Algorithm 1.

Acting (ALGORITHM.md, "Acting"): draw L candidate chunks, weight them by H(s, a) and
draw one from ``H / sum H``; all-zero H falls back to the arg-max of ``u + v - c``.
Before the potentials are trained, the weights are IDQL's expectile weights of Q - V.

Learning (ALGORITHM.md, "The loop"): every ``ot_every`` updates ``ot_steps`` ascent steps
on J(u, v), then an IQL step, then the OT-guided weighted score-matching step.
"""

import copy
import time
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from otpr_ros.core.checks import check_batch, check_count
from otpr_ros.core.config import OTPRConfig
from otpr_ros.core.critic import IQL, ChunkCritic
from otpr_ros.core.device import resolve_device
from otpr_ros.core.diffusion import DiffusionPolicy, sampling_indices
from otpr_ros.core.layers import COMPILE_MODES, LR_SCHEDULES, adam, load_optimizer, scheduled_rate
from otpr_ros.core.resampling import effective_sample_size, expectile_weights, select
from otpr_ros.core.transport import (KeypointRelationCost, NeuralPotentials, RunningScale, TransportCost,
                                     compatibility, keypoint_mask, transport_score)

GUIDANCES = ("compatibility", "q", "advantage", "uniform", "bc", "awr")
ACTING_WEIGHTS = ("compatibility", "q")
ACT_MODES = ("sample", "argmax", "single")
BATCH_MIXES = ("uniform", "fixed")
TRUNCATIONS = ("bootstrap", "failure")
ADVANTAGE_SOURCES = ("critic", "return")
Q_NORMALISATIONS = ("scale", "candidates")


@dataclass
class Decision:
    chunk: torch.Tensor        # (B, action_dim), normalised, in [-1, 1]
    index: torch.Tensor        # (B,) chosen candidate
    candidates: torch.Tensor   # (B, L, action_dim)
    weights: torch.Tensor      # (B, L): H, or IDQL weights before the potentials are trained


def check_config(config: OTPRConfig) -> None:
    """The agent's own consistency rules for a configuration (ValueError naming the setting);
    the agent checks them when built, fine-tuning overrides when applied."""
    if config.agent.guidance not in GUIDANCES:
        raise ValueError(f"guidance: expected one of {GUIDANCES}, got {config.agent.guidance!r}")
    if config.agent.acting_weights not in ACTING_WEIGHTS:
        raise ValueError(f"agent.acting_weights: expected one of {ACTING_WEIGHTS}, got {config.agent.acting_weights!r}")
    if config.agent.compile_mode not in COMPILE_MODES:
        raise ValueError(f"agent.compile_mode: expected one of {COMPILE_MODES}, got {config.agent.compile_mode!r}")
    if config.agent.eval_mode not in ("single", "argmax"):
        raise ValueError(f"eval_mode: expected 'single' or 'argmax', got {config.agent.eval_mode!r}")
    if not 0 <= config.agent.execute_steps <= config.chunk:
        raise ValueError(f"agent.execute_steps: expected 0 (the whole chunk) to chunk = {config.chunk}, "
                         f"got {config.agent.execute_steps}")
    d = config.diffusion      # the samplers' own rules, named as settings
    sampling_indices(d.num_steps, d.sampler, d.ddim_steps, d.eta,
                     names=("diffusion.sampler", "diffusion.ddim_steps", "diffusion.eta"))
    sampling_indices(d.num_steps, config.agent.actor_sampler, config.agent.actor_ddim_steps,
                     names=("agent.actor_sampler", "agent.actor_ddim_steps", "eta"))
    if config.transport.rho <= 0 or config.transport.lam <= 0:
        raise ValueError(f"transport.rho and transport.lam must be positive, got rho={config.transport.rho}, "
                         f"lam={config.transport.lam}")
    rates = {"diffusion.finetune_lr": config.diffusion.finetune_lr, "critic.lr": config.critic.lr,
             "transport.lr": config.transport.lr}
    for name, rate in rates.items():
        if not rate > 0:
            raise ValueError(f"{name}: a learning rate must be positive, got {rate}")
    for name in ("pretrain_lr_schedule", "finetune_lr_schedule"):
        if getattr(config.diffusion, name) not in LR_SCHEDULES:
            raise ValueError(f"diffusion.{name}: expected one of {LR_SCHEDULES}, "
                             f"got {getattr(config.diffusion, name)!r}")
    if config.transport.distance not in ("sqeuclidean", "cosine"):
        raise ValueError(f"transport.distance: expected 'sqeuclidean' or 'cosine', got {config.transport.distance!r}")
    if config.agent.q_normalisation not in Q_NORMALISATIONS:
        raise ValueError(f"agent.q_normalisation: expected one of {Q_NORMALISATIONS}, "
                         f"got {config.agent.q_normalisation!r}")
    if config.agent.q_normalisation == "candidates" and config.agent.guidance == "compatibility":
        raise ValueError("agent.q_normalisation: 'candidates' applies to guidance q or advantage; compatibility "
                         "guidance weighs by H")
    critic = config.critic
    for name, mix in (("critic.batch_mix", critic.batch_mix), ("agent.actor_batch_mix", config.agent.actor_batch_mix)):
        if mix not in BATCH_MIXES:
            raise ValueError(f"{name}: expected one of {BATCH_MIXES}, got {mix!r}")
    if config.agent.advantage_source not in ADVANTAGE_SOURCES:
        raise ValueError(f"agent.advantage_source: expected one of {ADVANTAGE_SOURCES}, "
                         f"got {config.agent.advantage_source!r}")
    if critic.truncation not in TRUNCATIONS:
        raise ValueError(f"critic.truncation: expected one of {TRUNCATIONS}, got {critic.truncation!r}")
    if not 0.0 <= critic.online_fraction <= 1.0:
        raise ValueError(f"critic.online_fraction: expected a share in [0, 1], got {critic.online_fraction}")
    if critic.steps_per_update < 1:
        raise ValueError(f"critic.steps_per_update: expected >= 1 IQL step per update, got {critic.steps_per_update}")
    if not config.transport.masked and config.transport.beta != 0.0:
        raise ValueError("beta: the unmasked variant (transport.masked=false) uses no keypoint cost; "
                         "set transport.beta=0")
    if config.transport.masked and config.transport.batch_actions > config.transport.batch_states:
        raise ValueError("transport.batch_actions: masked OT needs batch_actions <= batch_states "
                         "(a keypoint state's mass must fit in its paired action's)")


class OTPRAgent:
    def __init__(self, config: OTPRConfig):
        check_config(config)
        self.config, self.device = config, resolve_device(config.device)
        d, c, t = config.diffusion, config.critic, config.transport
        torch.manual_seed(config.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.policy = DiffusionPolicy(config.obs_dim, config.action_dim, d.num_steps, d.hidden, d.time_dim).to(self.device)
        self.critic = ChunkCritic(config.obs_dim, config.action_dim, c.hidden).to(self.device)
        self.potentials = NeuralPotentials(config.obs_dim, config.action_dim, t.hidden).to(self.device)
        self.q_scale = RunningScale(t.q_scale_momentum)
        self.iql = IQL(self.critic, c.lr, c.tau, c.gamma, c.polyak)
        self.actor_optimizer = adam(self.policy.net.parameters(), d.finetune_lr, d.weight_decay)
        self.potential_optimizer = adam(self.potentials.parameters(), t.lr)
        self.relation_cost = None
        self.cost = TransportCost(self.critic, self.q_scale)
        self.dual_steps = 0
        self.updates = 0
        self.progress = 0.0         # share of the run's env-step budget done (the actor's rate schedule)

    def set_learning_rates(self) -> None:
        """The optimisers take the configuration's rates: fine-tuning overrides change the
        configuration after they were built, and a restored optimiser state brings its own."""
        rates = ((self.actor_optimizer, self.actor_rate),
                 (self.potential_optimizer, self.config.transport.lr),
                 (self.iql.v_optimizer, self.config.critic.lr), (self.iql.q_optimizer, self.config.critic.lr))
        for optimizer, rate in rates:
            for group in optimizer.param_groups:
                group["lr"] = rate

    @property
    def actor_rate(self) -> float:
        """The actor's learning rate where the run stands: ``diffusion.finetune_lr``, or with the
        cosine schedule that rate times (1 + cos(pi progress)) / 2, 0 at the budget's end."""
        d = self.config.diffusion
        return scheduled_rate(d.finetune_lr, d.finetune_lr_schedule, self.progress)

    def set_progress(self, progress: float) -> None:
        """Where the run stands, as the share of its env-step budget done: the actor's optimiser
        takes ``actor_rate`` there (``set_learning_rates``)."""
        self.progress = progress
        self.set_learning_rates()

    # -- keypoints ---------------------------------------------------------------------------
    def set_keypoints(self, obs: torch.Tensor, actions: torch.Tensor) -> None:
        """Expert pairs that define g (and, through the buffer's ids, the mask)."""
        t = self.config.transport
        self.relation_cost = KeypointRelationCost(obs.to(self.device), actions.to(self.device), t.rho, t.distance)
        self.cost = TransportCost(self.critic, self.q_scale, t.beta if t.masked else 0.0, self.relation_cost)

    @property
    def potentials_ready(self) -> bool:
        return self.dual_steps >= self.config.transport.warmup_steps

    # -- acting ------------------------------------------------------------------------------
    @torch.no_grad()
    def candidate_weights(self, obs: torch.Tensor, candidates: torch.Tensor):
        """(weights, fallback score), each (B, L): H and ``u + v - c``; with ``agent.acting_weights:
        q`` a softmax of Q and Q; before the potentials are trained IDQL weights and Q."""
        a, obs_b = self.config.agent, obs[:, None, :]
        if a.acting_weights == "q":
            q = self.critic.target_q(obs_b, candidates)
            return torch.softmax(q / (self.q_scale.scale * a.q_temperature), dim=1), q
        if self.potentials_ready:
            cost = self.cost(obs_b, candidates)
            u, v = self.potentials.u(obs)[:, None], self.potentials.v(candidates)
            return compatibility(u, v, cost, self.config.transport.lam), transport_score(u, v, cost)
        q = self.critic.target_q(obs_b, candidates)
        advantage = q - self.critic.value(obs)[:, None]
        return expectile_weights(advantage, self.config.critic.tau), q

    @torch.no_grad()
    def act(self, obs: torch.Tensor, mode: str = "sample", noise=None, fast: bool = True) -> Decision:
        """One decision for each of B (normalised) states.

        mode ``sample``: compatibility resampling (exploration, the paper's acting rule);
        ``argmax``: the candidate with the largest weight; ``single``: L = 1, no weighting.
        ``fast=False`` samples by the plain reference path (see ``DiffusionPolicy.sample``).
        """
        if mode not in ACT_MODES:
            raise ValueError(f"mode: expected one of {ACT_MODES}, got {mode!r}")
        check_batch("obs", obs, self.config.obs_dim)
        d = self.config.diffusion
        num_candidates = 1 if mode == "single" else check_count("num_candidates", self.config.agent.num_candidates)
        candidates = self.policy.sample(obs, num_candidates, d.sampler, d.ddim_steps, d.eta, noise=noise,
                                        generator=self.generator, fast=fast, compiled=fast and d.compile)
        if mode == "single":
            weights = torch.ones(candidates.shape[:2], device=self.device)
            index = torch.zeros(obs.shape[0], dtype=torch.long, device=self.device)
        else:
            weights, score = self.candidate_weights(obs, candidates)
            uniform = torch.rand(obs.shape[0], generator=self.generator, device=self.device) if mode == "sample" \
                else None
            index = select(weights, score, "sample" if mode == "sample" else "argmax", uniform)
        chunk = candidates[torch.arange(obs.shape[0], device=self.device), index]
        return Decision(chunk, index, candidates, weights)

    # -- learning ----------------------------------------------------------------------------
    def update(self, buffer) -> dict:
        """One iteration of the loop: dual steps (every ot_every), ``critic.steps_per_update``
        IQL steps, the OT-guided actor step."""
        t = self.config.transport
        metrics = {}
        if self.updates % t.ot_every == 0:
            for _ in range(t.ot_steps):
                metrics.update(self.dual_step(buffer))
        for _ in range(self.config.critic.steps_per_update):
            metrics.update(self.critic_step(buffer))
        metrics.update(self.actor_step(buffer))
        metrics["actor/lr"] = self.actor_rate
        self.updates += 1
        return metrics

    def compile_updates_now(self, buffer) -> float | None:
        """With ``agent.compile_updates``: one update run on ``buffer`` and undone, so that
        torch.compile compiles now (60-75 s on a cold CPU, seconds from inductor's on-disk cache)
        and not in a run's first update, while the bridges wait. Networks, optimisers, counters,
        keypoints and the random draws (the generator, torch's own) come back as they were: the
        updates that follow are those of an agent that never warmed up. Returns the seconds it
        took, None when updates are not compiled."""
        if not self.config.agent.compile_updates:
            return None
        start = time.monotonic()
        saved = (copy.deepcopy(self.state_dict()), self.generator.get_state(), torch.get_rng_state(),
                 buffer.keypoint_index.clone())
        self.update(buffer)
        self.load_state_dict(saved[0])
        self.generator.set_state(saved[1])
        torch.set_rng_state(saved[2])
        buffer.keypoint_index = saved[3]
        return time.monotonic() - start

    def compilation(self) -> bool | str:
        """How the updates' dense parts run: False (eager) or torch.compile's mode. In
        ``reduce-overhead`` each compiled part is a CUDA graph whose outputs its next replay
        overwrites: each call marks a new generation, so a step asks once per compiled part,
        just before it runs it, and no step keeps a part's output past its next run."""
        a = self.config.agent
        if not a.compile_updates:
            return False
        if a.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        return a.compile_mode

    def critic_step(self, buffer) -> dict:
        """One IQL step on a batch drawn as ``critic.batch_mix`` says."""
        c = self.config.critic
        batch, online_share = self.draw(buffer, c.batch_size, c.batch_mix)
        metrics = self.iql.update(batch, compiled=self.compilation())
        metrics["critic/online_share"] = online_share
        self.q_scale.update(metrics["critic/q_abs_mean"])
        metrics["critic/q_scale"] = self.q_scale.scale
        return metrics

    def draw(self, buffer, size: int, mix: str):
        """A batch of ``size`` and its (expected) online share: ``fixed``: critic.online_fraction
        of it online, else uniform over the replay."""
        fraction = self.config.critic.online_fraction
        if mix == "fixed" and buffer.online.size and buffer.expert.size:
            return buffer.sample_mixed(size, fraction, self.generator), round(fraction * size) / size
        return buffer.sample(size, self.generator), buffer.online.size / len(buffer)

    def dual_step(self, buffer) -> dict:
        t = self.config.transport
        states, state_ids, actions, action_ids = buffer.sample_for_transport(t.batch_states, t.batch_actions,
                                                                             self.generator)
        cost = self.cost(states[:, None, :], actions[None, :, :], compiled=self.compilation())
        mask = keypoint_mask(state_ids, action_ids) if t.masked else None
        objective = self.potentials.objective(states, actions, cost, t.lam, mask, compiled=self.compilation())
        self.potential_optimizer.zero_grad(set_to_none=True)
        (-objective).backward()
        self.potential_optimizer.step()
        self.dual_steps += 1
        return {"transport/dual_objective": float(objective.detach())}

    def actor_step(self, buffer) -> dict:
        """OT-guided score matching over L policy candidates plus the stored action (guidance
        ``bc`` and ``awr``: over the stored actions alone)."""
        a = self.config.agent
        batch, _ = self.draw(buffer, a.actor_batch, a.actor_batch_mix)
        states, stored, earned = batch.obs, batch.action, batch.mc_return
        stored_ids = torch.full((states.shape[0],), -1, device=self.device)
        if self.config.transport.masked and buffer.num_keypoints:
            states = torch.cat([buffer.keypoint_obs, states])
            stored = torch.cat([buffer.keypoint_actions, stored])
            earned = torch.cat([torch.full((buffer.num_keypoints,), float("nan"), device=self.device), earned])
            stored_ids = torch.cat([torch.arange(buffer.num_keypoints, device=self.device), stored_ids])
        if a.guidance in ("bc", "awr"):      # the stored actions only: no candidates drawn
            weights = self.stored_action_weights(states, stored, earned) if a.guidance == "awr" else None
            loss = self.policy.noise_matching_loss(states, stored, weights, self.generator, compiled=self.compilation())
            self.step_actor(loss)
            metrics = {"actor/loss": float(loss.detach()), "actor/stored_weight": 1.0, "actor/guidance_ess": 1.0}
            if weights is not None:          # the share of the batch the weights effectively keep
                metrics["actor/batch_ess_share"] = float(weights.sum() ** 2 / weights.pow(2).sum() / len(weights))
            return metrics
        # Under masked OT a keypoint state's row is imitation of its paired action (its candidates'
        # weights are exactly 0): its candidates are neither sampled nor scored, but their random
        # draws are still made, so the other rows see the draws they would see with them.
        k = buffer.num_keypoints if a.guidance == "compatibility" and self.config.transport.masked else 0
        n, count = states.shape[0], a.num_candidates + 1
        with torch.no_grad():
            noise = self.policy.sampling_noise(n, a.num_candidates, a.actor_sampler, a.actor_ddim_steps, self.device,
                                               self.generator)
            sampled = self.policy.sample(states[k:], a.num_candidates, a.actor_sampler, a.actor_ddim_steps,
                                         noise=noise[:, k:].contiguous(), use_ema=False, compiled=self.compilation())
            candidates = torch.cat([sampled, stored[k:, None, :]], dim=1)
            weights = torch.cat([F.one_hot(torch.full((k,), count - 1, device=self.device), count).float(),
                                 self.guidance_weights(states[k:], candidates, stored_ids[k:])])
        steps, noise = self.policy.loss_draws(n * count, self.device, self.generator)
        obs_rows, action_rows = states[k:].repeat_interleave(count, 0), candidates.reshape(-1, candidates.shape[-1])
        row_weights = weights.reshape(-1)
        if k:                                # a keypoint row: its stored action, with that action's draws
            rows = torch.cat([torch.arange(k, device=self.device) * count + count - 1,
                              torch.arange(k * count, n * count, device=self.device)])
            steps, noise, row_weights = steps[rows], noise[rows], row_weights[rows]
            obs_rows, action_rows = torch.cat([states[:k], obs_rows]), torch.cat([stored[:k], action_rows])
        loss = self.policy.noise_matching_loss(obs_rows, action_rows, row_weights, compiled=self.compilation(),
                                               draws=(steps, noise))
        self.step_actor(loss)
        return {"actor/loss": float(loss.detach()), "actor/stored_weight": float(weights[:, -1].mean()),
                "actor/guidance_ess": float(effective_sample_size(weights).mean())}

    @torch.no_grad()
    def stored_action_weights(self, states, stored, earned=None) -> torch.Tensor:
        """Guidance ``awr``: advantage-weighted regression on the stored actions (AWR, AWAC),
        ``min(exp(advantage_temperature * A / std(A)), advantage_clip)`` with ``A = Q(s, a) - V(s)``
        standardised over the batch: the critic reweights data that was executed or
        demonstrated and never trains the policy on its own candidates. With
        ``agent.advantage_source: return``, ``A = G - V(s)`` where ``earned`` (G) is known."""
        a = self.config.agent
        q = self.critic.target_q(states[:, None, :], stored[:, None, :])[:, 0]
        if a.advantage_source == "return" and earned is not None:
            q = torch.where(torch.isnan(earned), q, earned)
        advantage = q - self.critic.value(states)
        scaled = advantage / advantage.std().clamp_min(1e-8)
        return torch.exp(a.advantage_temperature * scaled).clamp(max=a.advantage_clip)

    def step_actor(self, loss: torch.Tensor) -> None:
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_optimizer.step()
        self.policy.update_ema(self.config.diffusion.ema_decay)

    def guidance_weights(self, states, candidates, stored_ids) -> torch.Tensor:
        """Per-state weights over candidates (the last one is the stored action), rows summing to 1.

        For keypoint states (``stored_ids >= 0``) under masked OT only the stored, paired
        action is unmasked, so those rows reduce to imitation of the keypoint.
        """
        a, t = self.config.agent, self.config.transport
        obs_b = states[:, None, :]
        if a.guidance == "uniform":          # the actor step without guidance: imitation of its own candidates
            raw = torch.ones(candidates.shape[:2], device=self.device)
        elif a.guidance == "bc":             # diffusion BC on the replay data (the paper's "BC only")
            raw = F.one_hot(torch.full(candidates.shape[:1], candidates.shape[1] - 1, device=self.device),
                            candidates.shape[1]).float()
        elif a.guidance == "compatibility":
            cost = self.cost(obs_b, candidates, compiled=self.compilation())
            u, v = self.potentials.u(states)[:, None], self.potentials.v(candidates)
            mask = None
            if t.masked:
                candidate_ids = torch.full(candidates.shape[:2], -1, device=self.device)
                candidate_ids[:, -1] = stored_ids
                mask = ((stored_ids[:, None] < 0) | (candidate_ids == stored_ids[:, None])).float()
            raw, score = compatibility(u, v, cost, t.lam, mask), transport_score(u, v, cost)
            if mask is not None:
                score = score.masked_fill(mask == 0, float("-inf"))
            fallback = F.one_hot(score.argmax(1), candidates.shape[1]).float()
            raw = torch.where(raw.sum(1, keepdim=True) > 0, raw, fallback)
        else:
            q = self.critic.target_q(obs_b, candidates)
            if a.q_normalisation == "candidates":     # the ranking among a state's candidates, whatever its spread
                # (V(s) is one number per state: it drops out of Q - V standardised over the candidates)
                q = (q - q.mean(1, keepdim=True)) / q.std(1, keepdim=True).clamp_min(1e-8)
                advantage = q
            else:
                q = q / self.q_scale.scale
                advantage = q - self.critic.value(states)[:, None] / self.q_scale.scale
            if a.guidance == "q":
                raw = torch.softmax(q / a.q_temperature, dim=1)
            else:
                raw = torch.exp(a.advantage_temperature * advantage).clamp(max=a.advantage_clip)
        return raw / raw.sum(1, keepdim=True)

    # -- persistence ---------------------------------------------------------------------------
    def weights_state_dict(self) -> dict:
        """What acting and resuming fine-tuning need: networks, Q scale, keypoints, counters
        (a model directory holds this; a learner checkpoint adds the optimiser states)."""
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "potentials": self.potentials.state_dict(),
            "q_scale": self.q_scale.state_dict(),
            "keypoints": None if self.relation_cost is None else
            {"obs": self.relation_cost.obs.cpu(), "actions": self.relation_cost.actions.cpu()},
            "counters": {"dual_steps": self.dual_steps, "updates": self.updates},
        }

    def load_weights(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.potentials.load_state_dict(state["potentials"])
        self.q_scale.load_state_dict(state["q_scale"])
        if state["keypoints"] is not None:
            self.set_keypoints(state["keypoints"]["obs"], state["keypoints"]["actions"])
        self.dual_steps, self.updates = state["counters"]["dual_steps"], state["counters"]["updates"]

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            **self.weights_state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "potential_optimizer": self.potential_optimizer.state_dict(),
            "v_optimizer": self.iql.v_optimizer.state_dict(),
            "q_optimizer": self.iql.q_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.load_weights(state)
        load_optimizer(self.actor_optimizer, state["actor_optimizer"])
        load_optimizer(self.potential_optimizer, state["potential_optimizer"])
        load_optimizer(self.iql.v_optimizer, state["v_optimizer"])
        load_optimizer(self.iql.q_optimizer, state["q_optimizer"])
        self.set_learning_rates()
