"""Tensor-level losses against hand-computed values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cellviewer.core.errors import CellviewerError
from cellviewer.nets.losses import (BCELoss, DiceLoss, TverskyLoss, WeightedSum, create_loss,
                                    list_losses)


def _mask():
    t = torch.zeros(1, 1, 4, 4)
    t[..., 1:3, 1:3] = 1
    return t


def test_dice_of_identical_is_zero_and_of_disjoint_is_one():
    t = _mask()
    assert create_loss("dice", from_logits=False)(t, t).item() == pytest.approx(0.0, abs=1e-7)
    disjoint = create_loss("dice", from_logits=False, smooth=0.0)(1 - t, t)
    assert disjoint.item() == pytest.approx(1.0)


def test_dice_hand_computed():
    p = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]])
    t = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # inter = 1.5, sums = 1.5 + 2 -> dice = 3 / 3.5
    got = DiceLoss(smooth=0.0, from_logits=False)(p, t)
    assert got.item() == pytest.approx(1 - 3 / 3.5)


def test_tversky_half_half_equals_dice():
    logits = torch.randn(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    tv = TverskyLoss(alpha=0.5, beta=0.5, smooth=0.0)(logits, target)
    p = torch.sigmoid(logits)
    dice = 2 * (p * target).sum() / (p.sum() + target.sum())  # written out independently
    assert tv.item() == pytest.approx(1 - dice.item(), rel=1e-5)
    assert DiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(tv.item())


def test_tversky_weights_false_negatives_more():
    p = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    t = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])  # TP = 1, FP = 1, FN = 1
    got = TverskyLoss(alpha=0.3, beta=0.7, smooth=0.0, from_logits=False)(p, t)
    assert got.item() == pytest.approx(1 - 1 / (1 + 0.3 + 0.7))
    p_fn = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # only FN = 1
    p_fp = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])  # TP = 2, FP = 1
    loss = TverskyLoss(alpha=0.3, beta=0.7, smooth=0.0, from_logits=False)
    assert loss(p_fn, t).item() == pytest.approx(1 - 1 / 1.7)
    assert loss(p_fp, t).item() == pytest.approx(1 - 2 / 2.3)


def test_multiclass_dice_and_ignore_index():
    target = torch.tensor([[[0, 1], [2, 255]]])
    perfect = F.one_hot(torch.tensor([[[0, 1], [2, 0]]]), 3).permute(0, 3, 1, 2).float()
    loss = DiceLoss(mode="multiclass", from_logits=False, ignore_index=255, smooth=0.0)
    assert loss(perfect, target).item() == pytest.approx(0.0, abs=1e-7)
    # without ignoring, the 255 pixel would be class 0 -> mismatch; with ignore it is skipped
    wrong_there = perfect.clone()
    wrong_there[0, :, 1, 1] = torch.tensor([0.0, 0.0, 1.0])
    assert loss(wrong_there, target).item() == pytest.approx(0.0, abs=1e-7)


def test_bce_and_ce_match_torch():
    logits = torch.randn(2, 1, 5, 5)
    target = (torch.rand(2, 1, 5, 5) > 0.5).float()
    assert BCELoss()(logits, target).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, target).item())
    assert BCELoss()(logits, target[:, 0]).item() == pytest.approx(
        BCELoss()(logits, target).item())
    mc = torch.randn(2, 3, 5, 5)
    cls = torch.randint(0, 3, (2, 5, 5))
    cls[0, 0, 0] = -1
    got = create_loss("ce", ignore_index=-1)(mc, cls)
    assert got.item() == pytest.approx(F.cross_entropy(mc, cls, ignore_index=-1).item())


def test_mse_on_probabilities():
    logits = torch.zeros(1, 1, 2, 2)  # sigmoid -> 0.5
    target = torch.ones(1, 1, 2, 2)
    assert create_loss("mse")(logits, target).item() == pytest.approx(0.25)
    assert create_loss("mse", activation=None)(logits, target).item() == pytest.approx(1.0)
    mc = torch.zeros(1, 2, 1, 1)  # softmax -> (0.5, 0.5); one-hot (0, 1)
    assert create_loss("mse", activation="softmax")(mc, torch.tensor([[[1]]])).item() == \
        pytest.approx(0.25)


def test_weighted_sum_and_bce_tversky():
    logits = torch.randn(1, 1, 6, 6, requires_grad=True)
    target = (torch.rand(1, 1, 6, 6) > 0.5).float()
    combo = create_loss("bce+tversky")
    expected = BCELoss()(logits, target) + TverskyLoss(0.3, 0.7)(logits, target)
    assert combo(logits, target).item() == pytest.approx(expected.item())
    ws = WeightedSum([(2.0, DiceLoss()), (3.0, BCELoss())])
    value = ws(logits, target)
    assert value.item() == pytest.approx(
        2 * DiceLoss()(logits, target).item() + 3 * BCELoss()(logits, target).item())
    value.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError):
        WeightedSum([])


def test_create_loss_errors_list_names():
    with pytest.raises(CellviewerError) as err:
        create_loss("nope")
    for name in list_losses():
        assert name in str(err.value)
    assert {"bce", "ce", "dice", "tversky", "bce+tversky", "mse"} <= set(list_losses())
    with pytest.raises(CellviewerError, match="dice"):
        create_loss("dice", mode="weird")


def test_ce_dice_class_weight_reweights_the_ce_term():
    logits = torch.randn(2, 4, 5, 5)
    target = torch.randint(0, 4, (2, 5, 5))
    target[0, 0, 0] = -100  # ignored pixels stay ignored
    w = [1.0, 1.0, 1.0, 3.0]
    weighted = create_loss("ce+dice", class_weight=w, dice_weight=0.0)
    assert weighted(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target, weight=torch.tensor(w), ignore_index=-100).item(), rel=1e-5)
    plain = create_loss("ce+dice", dice_weight=0.0)(logits, target)
    assert plain.item() == pytest.approx(F.cross_entropy(logits, target, ignore_index=-100).item(), rel=1e-5)
    assert weighted(logits, target).item() != pytest.approx(plain.item())


def test_foreground_dice_scores_the_union_of_the_parts_per_image():
    # image 0: foreground prob 1 on 3 pixels, of which 2 are true foreground (nucleus or
    # cytoplasm, the split does not matter); 1 true foreground pixel missed (prob 0)
    big = 30.0
    logits = torch.full((2, 3, 2, 2), -big)
    logits[:, 0] = big  # background everywhere ...
    fg_pixels = [(0, 0, 2), (0, 1, 1), (1, 1, 1)]  # ... but these: (y, x, class)
    for y, x, c in fg_pixels:
        logits[0, 0, y, x] = -big
        logits[0, c, y, x] = big
    target = torch.zeros(2, 2, 2, dtype=torch.long)
    target[0, 0, 0], target[0, 0, 1], target[0, 1, 0] = 2, 1, 1  # (1,1) predicted but not true; (1,0) missed
    target[1, 1, 1] = 255  # image 1: all background, one ignored pixel
    loss = create_loss("fg-dice", smooth=0.0 + 1e-9, ignore_index=255)
    # image 0: 2·TP / (ΣP + ΣT) = 2·2 / (3 + 3) = 2/3; image 1: 0/0 → ≈ 1 with a tiny smooth
    assert loss(logits, target).item() == pytest.approx(1 - (2 / 3 + 1.0) / 2, abs=1e-4)
    # the classes inside the foreground do not matter: swap nucleus and cytoplasm in the target
    swapped = torch.where(target == 1, 2, torch.where(target == 2, 1, target))
    assert loss(logits, swapped).item() == pytest.approx(loss(logits, target).item(), abs=1e-6)
    # ce+dice with fg_dice_weight adds exactly that term
    plain = create_loss("ce+dice", ignore_index=255)
    withfg = create_loss("ce+dice", ignore_index=255, fg_dice_weight=2.0)
    fg = create_loss("fg-dice", ignore_index=255)
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    t = torch.randint(0, 3, (2, 6, 6))
    assert withfg(x, t).item() == pytest.approx(plain(x, t).item() + 2 * fg(x, t).item(), rel=1e-5)
    withfg(x, t).backward()
    assert torch.isfinite(x.grad).all()
