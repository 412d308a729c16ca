"""Stochastic weight averaging (SWA) of a training run's last epochs.

Near the end of a run the weights wander around a plateau; their average usually sits
nearer its centre and generalises better than any one epoch (Izmailov et al., 2018).
:class:`WeightWindow` keeps the float weights of the last ``n`` epochs (CPU copies; the
nets here are a few MB), :func:`average_into` loads their mean into a net, and
:func:`refresh_batchnorm` re-estimates BatchNorm statistics for the averaged weights on
training batches (averaged running statistics do not belong to averaged weights).
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable


class WeightWindow:
    """The state dicts of the last ``n`` epochs (floating tensors copied to the CPU)."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError("an SWA window needs at least one epoch")
        self.snapshots: deque = deque(maxlen=int(n))

    def add(self, net) -> None:
        self.snapshots.append({k: v.detach().float().cpu().clone() for k, v in net.state_dict().items()
                               if v.is_floating_point()})

    def __len__(self) -> int:
        return len(self.snapshots)


def average_into(net, window: WeightWindow) -> int:
    """Load the mean of ``window``'s snapshots into ``net``; returns how many were averaged."""
    import torch

    n = len(window)
    if n == 0:
        return 0
    own = net.state_dict()
    mean = {}
    for k in window.snapshots[0]:
        acc = torch.zeros_like(window.snapshots[0][k])
        for snap in window.snapshots:
            acc += snap[k]
        mean[k] = (acc / n).to(own[k].dtype)
    net.load_state_dict(mean, strict=False)  # integer buffers (BatchNorm's batch counters) are kept
    return n


def refresh_batchnorm(net, batches: Iterable, forward: Callable | None = None) -> bool:
    """Re-estimate every BatchNorm's running mean/var on ``batches`` (inputs); False when the net has none."""
    import torch

    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    momenta = {}
    for m in bns:
        m.reset_running_stats()
        momenta[m] = m.momentum
        m.momentum = None  # cumulative average over the batches
    was_training = net.training
    net.train()
    with torch.no_grad():
        for x in batches:
            (forward or net)(x)
    for m, mom in momenta.items():
        m.momentum = mom
    net.train(was_training)
    return True
