"""What every network here is built from and trained with: MLPs with Mish activations, Adam.

Mish is ``x tanh(softplus(x))``. Eager PyTorch runs it as its own kernel; inside
``torch.compile`` it is written in closed form, ``x n / (n + 2)`` with ``n = e^x (e^x + 2)``,
which the compiler fuses with the surrounding bias adds into one vectorised loop (its own
lowering of ``aten.mish`` is about as slow as eager: 35 ms against 6.6 ms for the closed form
on a 16 384 x 256 tensor, one thread of this 2-core EPYC, 2026-11-30). The two agree to
2e-6 max(1, |x|) (checked in test/unit/test_layers.py); ONNX exports write the same closed form
(``model/onnx_export.mish_closed_form``).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

EXP_CLAMP = 20.0    # beyond it tanh(softplus(x)) = 1 in float32: mish(x) = x


def mish(x: torch.Tensor) -> torch.Tensor:
    if torch.compiler.is_compiling():
        e = torch.exp(x.clamp(max=EXP_CLAMP))
        n = e * (e + 2.0)
        return x * n / (n + 2.0)
    return F.mish(x)


class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(x)


def mlp(in_dim: int, hidden, out_dim: int) -> nn.Sequential:
    layers, width = [], in_dim
    for size in hidden:
        layers += [nn.Linear(width, size), Mish()]
        width = size
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def mlp_on_pair(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``net(cat([x, y], -1))`` with the leading dimensions of x and y broadcast, its first
    layer applied to x and y apart: on a product of Bs states (Bs, 1, .) and Ba actions
    (1, Ba, .) that layer costs a row per state and per action instead of one per pair."""
    first, width = net[0], x.shape[-1]
    h = F.linear(x, first.weight[:, :width], first.bias) + F.linear(y, first.weight[:, width:])
    for layer in net[1:]:
        h = layer(h)
    return h


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


def compiled_once(cache: dict, key, make, mode: bool | str = True):
    """``make()`` (a function or module) through ``torch.compile`` with static shapes, compiled
    on first use and kept in ``cache`` under ``key``. ``mode``: one of ``COMPILE_MODES``
    (``True``: ``default``); ``reduce-overhead`` replays each compiled part as a CUDA graph on a
    GPU (and is ``default`` on a CPU), its outputs valid until the part runs again after
    ``torch.compiler.cudagraph_mark_step_begin()``."""
    mode = "default" if mode is True else mode
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode: expected one of {COMPILE_MODES}, got {mode!r}")
    if (key, mode) not in cache:
        cache[key, mode] = torch.compile(make(), dynamic=False, mode=mode)
    return cache[key, mode]


def adam(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam in PyTorch's fused form: the update of its per-tensor loop in one kernel per step
    (0.5 ms against 2.1 ms for the critic's two Q networks on this CPU, 2026-11-30)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)


LR_SCHEDULES = ("constant", "cosine")


def scheduled_rate(rate: float, schedule: str, progress: float) -> float:
    """A learning rate where a run stands (``progress``: the share of its budget done):
    ``rate`` when constant; cosine: ``rate (1 + cos(pi progress)) / 2``, 0 at the budget's end."""
    if schedule == "constant":
        return rate
    return rate * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def load_optimizer(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)`` keeping the optimizer's own implementation flags
    (a checkpoint written by per-tensor Adam resumes fused)."""
    flags = {key: optimizer.defaults[key] for key in ("fused", "foreach") if key in optimizer.defaults}
    optimizer.load_state_dict({**state, "param_groups": [{**group, **flags} for group in state["param_groups"]]})


@torch.no_grad()
def lerp_parameters(target: nn.Module, source: nn.Module, weight: float) -> None:
    """``target += weight (source - target)`` over all parameters at once (Polyak and EMA)."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), weight)
