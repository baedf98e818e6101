"""Diffusion policy: cosine-schedule DDPM over normalised action chunks.

The network predicts the noise ``eps_theta(a_k, s, k)`` (ALGORITHM.md, "Diffusion policy").
Sampling is batched: one call denoises ``L`` candidates for each of ``B`` states.

DDPM ancestral sampling is the special case of DDIM with every step and ``eta = 1``
(its per-step variance is then exactly the DDPM posterior variance), so one loop serves
both; the predicted ``a_0`` is clamped to [-1, 1] at every step.
"""

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from otpr_ros.core.checks import check_batch, check_count, check_finite, check_same_rows
from otpr_ros.core.layers import Mish, compiled_once, lerp_parameters, mish


def cosine_alpha_bars(num_steps: int, offset: float = 0.008) -> torch.Tensor:
    """``abar_k`` for k = 0..K-1 (Nichol & Dhariwal), betas clipped at 0.999 as they do."""
    check_count("num_steps", num_steps)

    def f(t):
        return math.cos((t / num_steps + offset) / (1 + offset) * math.pi / 2) ** 2

    betas = [min(1.0 - f(k + 1) / f(k), 0.999) for k in range(num_steps)]
    return torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float64), dim=0)


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        angles = step.float()[:, None] * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResidualBlock(nn.Module):
    """Pre-activation residual layer: ``h + W mish(h)`` (a projection when widths differ)."""

    def __init__(self, width_in: int, width_out: int):
        super().__init__()
        self.linear = nn.Linear(width_in, width_out)
        self.skip = nn.Identity() if width_in == width_out else nn.Linear(width_in, width_out, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.skip(h) + self.linear(mish(h))


class NoiseNet(nn.Module):
    """Residual MLP on ``[a_k, time embedding(k), s]`` that predicts the noise.

    The first layer is linear in its concatenated input, so its observation part and its
    time part can be computed apart (``condition``, ``step_terms``) and reused across the
    K denoising steps of one decision: the result is the same, with fewer FLOPs.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden=(512, 512, 512), time_dim: int = 32):
        super().__init__()
        if not hidden:
            raise ValueError("hidden: at least one hidden layer is needed")
        self.obs_dim, self.action_dim, self.time_dim = obs_dim, action_dim, time_dim
        self.time_mlp = nn.Sequential(
            SinusoidalEmbedding(time_dim),
            nn.Linear(time_dim, 2 * time_dim),
            Mish(),
            nn.Linear(2 * time_dim, time_dim),
        )
        self.input_layer = nn.Linear(action_dim + time_dim + obs_dim, hidden[0])
        self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(hidden[:-1], hidden[1:]))
        self.output_layer = nn.Linear(hidden[-1], action_dim)

    def forward(self, noisy_action: torch.Tensor, step: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        h = self.input_layer(torch.cat([noisy_action, self.time_mlp(step), obs], dim=-1))
        return self._trunk(h)

    def _trunk(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        return self.output_layer(mish(h))

    # -- the same network, split for fast sampling -------------------------------------
    def condition(self, obs: torch.Tensor) -> torch.Tensor:
        """Observation part of the first layer plus its bias."""
        weight = self.input_layer.weight[:, self.action_dim + self.time_dim:]
        return F.linear(obs, weight, self.input_layer.bias)

    def step_terms(self, steps: torch.Tensor) -> torch.Tensor:
        """Time part of the first layer for each step in ``steps``."""
        weight = self.input_layer.weight[:, self.action_dim:self.action_dim + self.time_dim]
        return F.linear(self.time_mlp(steps), weight)

    def forward_conditioned(self, noisy_action, step_term, obs_term) -> torch.Tensor:
        weight = self.input_layer.weight[:, :self.action_dim]
        return self._trunk(torch.addmm(obs_term + step_term, noisy_action, weight.t()))


def sampling_indices(num_steps: int, method: str = "ddpm", ddim_steps=None, eta: float = 1.0,
                     names=("method", "ddim_steps", "eta")) -> torch.Tensor:
    """The diffusion indices a sampler visits, from the noisiest to 0; a ValueError names the
    bad argument by ``names`` (the configuration's names for them, e.g. ``diffusion.eta``)."""
    method_name, steps_name, eta_name = names
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"{eta_name}: expected a value in [0, 1], got {eta}")
    if method == "ddpm":
        return torch.arange(num_steps - 1, -1, -1)
    if method == "ddim":
        count = num_steps if ddim_steps is None else check_count(steps_name, ddim_steps)
        if count > num_steps:
            raise ValueError(f"{steps_name}: {count} is more than the {num_steps} diffusion steps")
        return torch.linspace(num_steps - 1, 0, count).round().long()
    raise ValueError(f"{method_name}: expected 'ddpm' or 'ddim', got {method!r}")


class DiffusionPolicy(nn.Module):
    """The policy: noise network, its EMA copy for acting, the schedule, the sampler."""

    def __init__(self, obs_dim: int, action_dim: int, num_steps: int = 20, hidden=(512, 512, 512),
                 time_dim: int = 32):
        super().__init__()
        self.obs_dim, self.action_dim, self.num_steps = obs_dim, action_dim, check_count("num_steps", num_steps)
        self.net = NoiseNet(obs_dim, action_dim, tuple(hidden), time_dim)
        self.ema_net = copy.deepcopy(self.net).requires_grad_(False)
        self.register_buffer("alpha_bars", cosine_alpha_bars(num_steps).float())
        self._compiled = {}

    # -- training ----------------------------------------------------------------------
    def noise_matching_loss(self, obs: torch.Tensor, actions: torch.Tensor, weights=None,
                            generator=None, compiled: bool | str = False, draws=None) -> torch.Tensor:
        """Mean (or ``weights``-weighted mean) of ``|eps_theta(a_k, s, k) - e|^2``, k ~ U{0..K-1}.
        ``compiled``: the network's forward and backward through ``torch.compile`` (the same
        draws of k and e; one compilation per shape). ``draws``: (k, e) drawn beforehand by
        ``loss_draws``, one row per row of ``actions``."""
        per_sample = self.per_sample_loss(obs, actions, generator, compiled, draws)
        if weights is None:
            return per_sample.mean()
        if weights.shape != per_sample.shape:
            raise ValueError(f"weights: expected shape {tuple(per_sample.shape)}, got {tuple(weights.shape)}")
        check_finite("weights", weights)
        return (weights * per_sample).sum() / weights.sum().clamp_min(1e-12)

    def per_sample_loss(self, obs, actions, generator=None, compiled: bool | str = False,
                        draws=None) -> torch.Tensor:
        check_batch("obs", obs, self.obs_dim)
        check_batch("actions", actions, self.action_dim)
        check_same_rows("obs", obs, "actions", actions)
        steps, noise = self.loss_draws(obs.shape[0], obs.device, generator) if draws is None else draws
        if steps.shape != obs.shape[:1] or noise.shape != actions.shape:
            raise ValueError(f"draws: expected steps {tuple(obs.shape[:1])} and noise {tuple(actions.shape)}, "
                             f"got {tuple(steps.shape)} and {tuple(noise.shape)}")
        error = compiled_once(self._compiled, "noise_error", lambda: self._noise_error, compiled) if compiled else \
            self._noise_error
        return error(obs, actions, steps, noise)

    def loss_draws(self, rows: int, device, generator=None):
        """The random part of the noise-matching loss for ``rows`` rows: steps k and noise e."""
        steps = torch.randint(0, self.num_steps, (rows,), device=device, generator=generator)
        return steps, torch.randn((rows, self.action_dim), device=device, generator=generator)

    def _noise_error(self, obs, actions, steps, noise) -> torch.Tensor:
        abar = self.alpha_bars[steps][:, None]
        noisy = abar.sqrt() * actions + (1 - abar).sqrt() * noise
        return (self.net(noisy, steps, obs) - noise).pow(2).mean(dim=-1)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        lerp_parameters(self.ema_net, self.net, 1.0 - decay)

    # -- sampling ----------------------------------------------------------------------
    def sampling_steps(self, method: str = "ddpm", ddim_steps=None) -> torch.Tensor:
        """Diffusion indices visited, from the noisiest to 0."""
        return sampling_indices(self.num_steps, method, ddim_steps)

    def noise_shape(self, batch: int, num_candidates: int, method: str = "ddpm", ddim_steps=None):
        """Shape of the ``noise`` argument of ``sample``: the initial noise, then one for each
        step but the last (which returns its clamped ``a_0``)."""
        return (len(self.sampling_steps(method, ddim_steps)), batch, num_candidates, self.action_dim)

    def sampling_noise(self, batch: int, num_candidates: int, method: str = "ddpm", ddim_steps=None, device=None,
                       generator=None) -> torch.Tensor:
        """The random part of ``sample``: its ``noise`` argument, drawn as ``sample`` draws it."""
        return torch.randn(self.noise_shape(batch, num_candidates, method, ddim_steps), device=device,
                           generator=generator)

    def sampler(self, method: str = "ddpm", ddim_steps=None, eta: float = 1.0, use_ema: bool = True,
                split_first_layer: bool = True) -> "DenoisingSampler":
        """The reverse process as a module ``(obs, noise) -> candidates`` (compilable, exportable)."""
        if method == "ddpm":
            eta = 1.0
        return DenoisingSampler(self.ema_net if use_ema else self.net, self.alpha_bars,
                                sampling_indices(self.num_steps, method, ddim_steps, eta), eta, split_first_layer)

    def sample(self, obs: torch.Tensor, num_candidates: int, method: str = "ddpm", ddim_steps=None,
               eta: float = 1.0, noise=None, generator=None, use_ema: bool = True,
               fast: bool = True, compiled: bool | str = False) -> torch.Tensor:
        """Draw ``num_candidates`` chunks for each state: returns (B, L, action_dim) in [-1, 1].

        ``noise`` (see ``noise_shape``) makes the draw a deterministic function of its input,
        which is how the ONNX graph is compared with this one. ``eta`` applies to DDIM;
        DDPM is DDIM with all steps and ``eta = 1``. ``fast=False`` is the plain reference
        path (full network every step, autograd on) that the benchmark compares against.
        ``compiled=True`` runs the fast path through ``torch.compile`` (about 40 % less time
        per decision on a 2-core CPU, after a one-off compilation of ~25 s per shape); the
        compiled module reads the live parameters, so weight updates need no recompilation.
        """
        check_batch("obs", obs, self.obs_dim)
        check_count("num_candidates", num_candidates)
        sampler = compiled_once(self._compiled, (method, ddim_steps, eta, use_ema),
                                lambda: self.sampler(method, ddim_steps, eta, use_ema), compiled) if compiled else \
            self.sampler(method, ddim_steps, eta, use_ema, split_first_layer=fast)
        shape = self.noise_shape(obs.shape[0], num_candidates, method, ddim_steps)
        if noise is None:
            noise = self.sampling_noise(obs.shape[0], num_candidates, method, ddim_steps, obs.device, generator)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise: expected shape {shape}, got {tuple(noise.shape)}")
        else:
            check_finite("noise", noise)
        with torch.inference_mode(fast or compiled):
            candidates = sampler(obs, noise)
        return candidates.clone()


class DenoisingSampler(nn.Module):
    """DDIM reverse process over fixed steps, with the schedule folded into per-step constants.

    Per step, with ``abar`` and ``abar_prev`` of the visited indices:
        x0     = clamp((x - sqrt(1 - abar) eps) / sqrt(abar), -1, 1)
        eps'   = (x - sqrt(abar) x0) / sqrt(1 - abar)          (consistent with the clamped x0)
        sigma  = eta sqrt((1 - abar_prev) / (1 - abar) (1 - abar / abar_prev))
        x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps' + sigma z
    which is ``x_prev = p x0 + q x + sigma z`` with constants p, q: four tensor operations
    around the network per step. ``eta = 1`` over every step is DDPM's ancestral sampler.
    """

    def __init__(self, net: NoiseNet, alpha_bars: torch.Tensor, steps: torch.Tensor, eta: float,
                 split_first_layer: bool = True):
        super().__init__()
        self.net, self.split_first_layer = net, split_first_layer
        self.register_buffer("steps", steps.to(alpha_bars.device), persistent=False)
        abars = alpha_bars.double().cpu()[steps.cpu()].tolist()
        self.coefficients, sigmas = [], []
        for i, abar in enumerate(abars):
            abar_prev = abars[i + 1] if i + 1 < len(abars) else 1.0
            sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
            keep = math.sqrt(max(1 - abar_prev - sigma ** 2, 0.0))
            p = math.sqrt(abar_prev) - keep * math.sqrt(abar) / math.sqrt(1 - abar)
            q = keep / math.sqrt(1 - abar)
            self.coefficients.append((1 / math.sqrt(abar), math.sqrt(1 - abar) / math.sqrt(abar), p, q))
            sigmas.append(sigma)
        # each noise slice's scale (1 for the initial noise, then each step's sigma; the last step
        # draws none), applied to the whole noise tensor at once: one operation instead of one per
        # step in an exported graph (OpenVINO would otherwise scale the whole tensor at every step)
        scales = [1.0] + sigmas[:-1]
        self.register_buffer("noise_scales", torch.tensor(scales, device=alpha_bars.device).view(-1, 1, 1, 1),
                             persistent=False)

    @property
    def num_sampling_steps(self) -> int:
        return len(self.coefficients)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim), noise (S, B, L, D) -> candidates (B, L, D)."""
        _, batch, num_candidates, width = noise.shape
        net = self.net
        if self.split_first_layer:
            obs_term = net.condition(obs).repeat_interleave(num_candidates, dim=0)
            step_terms = net.step_terms(self.steps)
        else:
            flat_obs = obs.repeat_interleave(num_candidates, dim=0)
        noise = noise * self.noise_scales
        x = noise[0].reshape(batch * num_candidates, width)
        for i, (a, b, p, q) in enumerate(self.coefficients):
            if self.split_first_layer:
                eps = net.forward_conditioned(x, step_terms[i], obs_term)
            else:
                eps = net(x, self.steps[i].expand(x.shape[0]), flat_obs)
            x0 = (x * a - eps * b).clamp(-1.0, 1.0)
            if i + 1 == len(self.coefficients):
                x = x0                                   # abar_prev = 1: the last step returns x0
            else:
                x = x0 * p + x * q + noise[i + 1].reshape_as(x)
        return x.reshape(batch, num_candidates, width)
