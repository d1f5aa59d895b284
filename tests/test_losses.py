"""Losses: hand-computed values on tiny tensors, a brute-force Lovasz reference, and per-loss sanity."""

from __future__ import annotations

import math

import pytest
import torch

from personseg.losses import (
    LOSSES,
    BCEDiceLoss,
    BoundaryLovaszLoss,
    DiceLoss,
    FocalLoss,
    LovaszLoss,
    TverskyLoss,
    get_loss,
    list_losses,
)
from personseg.losses._functional import contour_band, lovasz_grad

LN2, LN3 = math.log(2.0), math.log(3.0)

# Logits 0 -> p = 1/2, ln 3 -> p = 3/4. Targets include a soft 0.5.
BCE_LOGITS = torch.tensor([[[[0.0, LN3], [LN3, 0.0]]]])
BCE_TARGET = torch.tensor([[[[1.0, 1.0], [0.0, 0.5]]]])
# per pixel: -ln(1/2), -ln(3/4), -ln(1/4), -(ln(1/2)/2 + ln(1/2)/2)
BCE_EXPECTED = (LN2 + math.log(4 / 3) + math.log(4) + LN2) / 4

# p = 1/2 everywhere against a single foreground pixel:
# intersection 1/2, sum(p) 2, sum(t) 1; TP 1/2, FP 3/2, FN 1/2.
HALF = torch.zeros(1, 1, 2, 2)
ONE_PIXEL = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])


def test_registry_names_and_default():
    assert list_losses() == ["bce", "bce_dice", "dice", "focal", "lovasz", "lovasz_boundary", "tversky"]
    assert set(LOSSES) == set(list_losses())
    loss = get_loss("bce_dice")
    assert isinstance(loss, BCEDiceLoss)
    assert (loss.bce_weight, loss.dice_weight) == (1.0, 1.0)
    tversky = get_loss("tversky", alpha=0.2, beta=0.8)
    assert (tversky.alpha, tversky.beta) == (0.2, 0.8)


def test_get_loss_unknown_name_lists_valid_names():
    with pytest.raises(KeyError) as info:
        get_loss("jaccard")
    message = str(info.value)
    assert "'jaccard'" in message
    for name in list_losses():
        assert name in message


def test_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match="same shape"):
        get_loss("dice")(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2))


def test_bce_hand_computed():
    assert get_loss("bce")(BCE_LOGITS, BCE_TARGET).item() == pytest.approx(BCE_EXPECTED, rel=1e-6)
    # pos_weight 2 doubles the foreground term: 2 ln2, 2 ln(4/3), ln4, 2 * ln2/2 + ln2/2
    expected = (2 * LN2 + 2 * math.log(4 / 3) + math.log(4) + 1.5 * LN2) / 4
    loss = get_loss("bce", pos_weight=2.0)(BCE_LOGITS, BCE_TARGET)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_dice_hand_computed():
    # smooth 0: 1 - (2 * 1/2) / (2 + 1) = 2/3 ; smooth 1: 1 - (1 + 1) / (3 + 1) = 1/2
    assert DiceLoss(smooth=0.0)(HALF, ONE_PIXEL).item() == pytest.approx(2 / 3, rel=1e-6)
    assert DiceLoss(smooth=1.0)(HALF, ONE_PIXEL).item() == pytest.approx(1 / 2, rel=1e-6)
    # soft target 1/2 everywhere: 1 - 2 * 1 / (2 + 2) = 1/2
    assert DiceLoss(smooth=0.0)(HALF, torch.full_like(HALF, 0.5)).item() == pytest.approx(1 / 2, rel=1e-6)


def test_dice_batch_vs_per_image():
    logits = torch.zeros(2, 1, 2, 2)
    target = torch.cat([ONE_PIXEL, torch.ones(1, 1, 2, 2)])
    # image 2: intersection 2, sum(p) 2, sum(t) 4 -> 1 - 4/6 = 1/3
    # per image: (2/3 + 1/3) / 2 = 1/2 ; pooled: 1 - 2 * 5/2 / (4 + 5) = 4/9
    assert DiceLoss(smooth=0.0, per_image=True)(logits, target).item() == pytest.approx(1 / 2, rel=1e-6)
    assert DiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(4 / 9, rel=1e-6)


def test_perfect_prediction_gives_zero_dice():
    target = torch.tensor([[[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]]])
    logits = 30.0 * (2 * target - 1)
    assert DiceLoss()(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    assert DiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    # empty target, confidently empty prediction: smoothing makes it a perfect score, not 0/0
    empty = torch.zeros(1, 1, 2, 3)
    assert DiceLoss()(torch.full_like(empty, -30.0), empty).item() == pytest.approx(0.0, abs=1e-6)


def test_bce_dice_is_weighted_sum():
    dice = DiceLoss()(BCE_LOGITS, BCE_TARGET).item()
    expected = BCE_EXPECTED + dice
    assert get_loss("bce_dice")(BCE_LOGITS, BCE_TARGET).item() == pytest.approx(expected, rel=1e-6)
    weighted = get_loss("bce_dice", bce_weight=0.5, dice_weight=2.0)(BCE_LOGITS, BCE_TARGET)
    assert weighted.item() == pytest.approx(0.5 * BCE_EXPECTED + 2.0 * dice, rel=1e-6)
    with pytest.raises(ValueError, match="bce_weight"):
        BCEDiceLoss(bce_weight=0.0, dice_weight=0.0)


def test_focal_hand_computed():
    logits = torch.tensor([[[[0.0, LN3]]]])
    target = torch.tensor([[[[1.0, 1.0]]]])
    # (1 - p_t)^2 * -ln p_t with p_t = 1/2 and 3/4
    expected = ((0.5**2) * LN2 + (0.25**2) * math.log(4 / 3)) / 2
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # alpha weighs foreground by alpha and background by 1 - alpha
    bg = torch.zeros_like(target)
    assert FocalLoss(alpha=0.25)(logits[..., :1], target[..., :1]).item() == pytest.approx(0.25 * 0.25 * LN2, rel=1e-6)
    assert FocalLoss(alpha=0.25)(logits[..., :1], bg[..., :1]).item() == pytest.approx(0.75 * 0.25 * LN2, rel=1e-6)
    # gamma 0 without alpha is plain BCE, soft targets included
    assert FocalLoss(gamma=0.0)(BCE_LOGITS, BCE_TARGET).item() == pytest.approx(BCE_EXPECTED, rel=1e-6)


def test_tversky_hand_computed():
    # 1 - TP / (TP + 0.3 FP + 0.7 FN) = 1 - 0.5 / (0.5 + 0.45 + 0.35) = 8/13
    loss = TverskyLoss(alpha=0.3, beta=0.7, smooth=0.0)(HALF, ONE_PIXEL)
    assert loss.item() == pytest.approx(8 / 13, rel=1e-6)
    focal = TverskyLoss(alpha=0.3, beta=0.7, gamma=2.0, smooth=0.0)(HALF, ONE_PIXEL)
    assert focal.item() == pytest.approx((8 / 13) ** 2, rel=1e-6)


def test_tversky_with_equal_weights_is_dice():
    # Exact only without smoothing: Tversky adds `smooth` to TP, Dice to 2 TP.
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 5, 5, generator=gen)
    target = torch.rand(2, 1, 5, 5, generator=gen)
    for per_image in (False, True):
        tversky = TverskyLoss(alpha=0.5, beta=0.5, smooth=0.0, per_image=per_image)(logits, target)
        dice = DiceLoss(smooth=0.0, per_image=per_image)(logits, target)
        torch.testing.assert_close(tversky, dice)


def _reference_lovasz(logits: list[float], labels: list[int]) -> float:
    """Lovasz extension of the Jaccard loss evaluated at the hinge errors, straight from its definition."""

    def jaccard_loss(wrong: set[int]) -> float:
        # Wrong pixels flip the prediction; everything else is predicted as labelled.
        pred = [(y == 1) != (i in wrong) for i, y in enumerate(labels)]
        inter = sum(1 for p, y in zip(pred, labels, strict=True) if p and y == 1)
        union = sum(1 for p, y in zip(pred, labels, strict=True) if p or y == 1)
        return 1.0 - inter / union if union else 0.0

    errors = [max(0.0, 1.0 - x * (2 * y - 1)) for x, y in zip(logits, labels, strict=True)]
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    total, previous, wrong = 0.0, 0.0, set()
    for i in order:
        wrong.add(i)
        current = jaccard_loss(wrong)
        total += errors[i] * (current - previous)
        previous = current
    return total


def test_lovasz_grad_prefix_jaccard():
    # gt sorted [1, 0, 1]; Jaccard loss with the first 1, 2, 3 pixels wrong:
    # 1 - 1/2 (one person pixel lost), 1 - 1/3 (plus a false positive), 1 - 0/3 -> differences
    grad = lovasz_grad(torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(grad, torch.tensor([1 / 2, 1 / 6, 1 / 3]))


def test_lovasz_matches_reference():
    logits = torch.tensor([[[[2.0, -0.5, 0.3], [-1.5, 0.8, -0.2]]], [[[0.1, -2.0, 1.2], [0.4, -0.7, 3.0]]]])
    target = torch.tensor([[[[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]], [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    flat_logits, flat_labels = logits.reshape(2, -1).tolist(), target.reshape(2, -1).long().tolist()

    per_image = sum(_reference_lovasz(x, y) for x, y in zip(flat_logits, flat_labels, strict=True)) / 2
    assert LovaszLoss()(logits, target).item() == pytest.approx(per_image, rel=1e-6)

    pooled = _reference_lovasz(sum(flat_logits, []), sum(flat_labels, []))
    assert LovaszLoss(per_image=False)(logits, target).item() == pytest.approx(pooled, rel=1e-6)


def test_lovasz_known_values():
    target = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    # all logits 0 -> every hinge error is 1 -> loss = J(all pixels wrong) = 1
    assert LovaszLoss()(torch.zeros_like(target), target).item() == pytest.approx(1.0)
    # margins of at least 1 on every pixel -> no hinge error at all
    assert LovaszLoss()(2.0 * (2 * target - 1), target).item() == pytest.approx(0.0)
    # soft targets are binarised at 0.5
    soft = torch.tensor([[[[0.9, 0.2], [0.6, 0.5]]]])
    logits = torch.tensor([[[[0.3, -0.1], [1.2, -0.4]]]])
    torch.testing.assert_close(LovaszLoss()(logits, soft), LovaszLoss()(logits, target))


def test_contour_band_both_sides_of_the_contour_not_the_border():
    target = torch.zeros(1, 1, 12, 12)
    target[..., 3:9, 3:9] = 1.0  # a 6x6 square; diagonal 16.97, ratio 0.06 -> d = 1
    band = contour_band(target, ratio=0.06)[0, 0]
    expected = torch.zeros(12, 12, dtype=torch.bool)
    expected[2:10, 2:10] = True  # grown by 1 ...
    expected[4:8, 4:8] = False  # ... less the square shrunk by 1
    assert torch.equal(band, expected)
    # A person touching the left edge: the frame's edge is no contour, only the column where the label ends.
    half = torch.zeros(1, 1, 12, 12)
    half[..., :, :6] = 1.0
    edge = contour_band(half, ratio=0.06)[0, 0]
    assert edge.nonzero()[:, 1].unique().tolist() == [5, 6]
    # ratio 0.2 of the diagonal -> d = 3
    assert contour_band(target, ratio=0.2)[0, 0].sum().item() == 144  # the square grown by 3 covers the image


def test_boundary_lovasz_adds_the_hinge_over_the_band():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 12, 12)
    target = torch.zeros(2, 1, 12, 12)
    target[0, :, 3:9, 3:9] = 1.0
    target[1, :, 2:12, 6:10] = 1.0
    band = contour_band(target, ratio=0.06)
    reference = 0.0
    for i in range(2):
        keep = band[i].flatten()
        reference += _reference_lovasz(logits[i].flatten()[keep].tolist(), target[i].flatten()[keep].long().tolist())
    reference /= 2
    whole = LovaszLoss()(logits, target).item()
    loss = BoundaryLovaszLoss(band_weight=2.0, ratio=0.06)(logits, target).item()
    assert loss == pytest.approx(whole + 2.0 * reference, rel=1e-5)
    assert BoundaryLovaszLoss(band_weight=0.0)(logits, target).item() == pytest.approx(whole, rel=1e-6)
    # a missed strip along the contour costs more in the band than in the whole image
    good = 3.0 * (2 * target - 1)
    missed = good.clone()
    missed[0, :, 3:9, 3] = -3.0
    extra = BoundaryLovaszLoss(band_weight=1.0, ratio=0.06)(missed, target) - LovaszLoss()(missed, target)
    assert extra.item() > LovaszLoss()(missed, target).item() > 0
    with pytest.raises(ValueError, match="band_weight"):
        BoundaryLovaszLoss(band_weight=-1.0)


# ---- every registered loss -------------------------------------------------------------------------

ALL = list_losses()


def _toy_target() -> torch.Tensor:
    target = torch.zeros(2, 1, 8, 8)
    target[0, :, 2:6, 2:6] = 1.0
    target[1, :, :, :3] = 1.0
    target[1, :, :, 3] = 0.5  # a soft edge
    return target


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("case", ["random", "empty", "full", "soft"])
def test_finite_loss_and_grads(name: str, case: str):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 1, 6, 6, generator=gen).requires_grad_()
    target = {
        "random": (torch.rand(2, 1, 6, 6, generator=gen) > 0.5).float(),
        "empty": torch.zeros(2, 1, 6, 6),
        "full": torch.ones(2, 1, 6, 6),
        "soft": torch.rand(2, 1, 6, 6, generator=gen),
    }[case]
    loss = get_loss(name)(logits, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert loss.item() >= 0.0
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ALL)
def test_empty_masks_with_confident_empty_prediction(name: str):
    logits = torch.full((2, 1, 4, 4), -20.0, requires_grad=True)
    loss = get_loss(name)(logits, torch.zeros(2, 1, 4, 4))
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-4)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", ALL)
def test_low_precision_logits_reduce_in_float32(name: str):
    logits = torch.randn(1, 1, 4, 4).bfloat16()
    loss = get_loss(name)(logits, _toy_target()[:1, :, :4, :4])
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("name", ALL)
def test_sgd_decreases_loss(name: str):
    gen = torch.Generator().manual_seed(4)
    target = _toy_target()
    logits = (0.1 * torch.randn(target.shape, generator=gen)).requires_grad_()
    loss_fn = get_loss(name)
    # The logits are the parameters; mean-reduced losses give each pixel a gradient ~1/pixels, hence the lr.
    opt = torch.optim.SGD([logits], lr=50.0)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = loss_fn(logits, target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses
