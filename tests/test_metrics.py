"""Metrics against hand-counted masks and against torchmetrics."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.classification import binary_accuracy, binary_f1_score, binary_jaccard_index

from personseg.evaluation.metrics import (
    MetricAccumulator,
    dice_score,
    get_stats,
    iou_score,
    pixel_accuracy,
    soft_error,
)

# Three 2x3 images, counted by hand:
#   A: pred [[1,1,0],[0,1,0]] vs target [[1,0,0],[1,1,0]] -> tp=2 fp=1 fn=1 tn=2
#      IoU 2/4, Dice 4/6, accuracy 4/6
#   B: empty pred vs one target pixel                        -> tp=0 fp=0 fn=1 tn=5
#      IoU 0, Dice 0, accuracy 5/6
#   C: empty pred vs empty target                            -> tp=0 fp=0 fn=0 tn=6
#      IoU and Dice are 0/0 -> zero_division (1.0 by default), accuracy 6/6
PRED = torch.tensor(
    [
        [[0.9, 0.6, 0.1], [0.2, 0.5, 0.4]],  # 0.5 counts as foreground (pred >= threshold)
        [[0.0, 0.3, 0.49], [0.1, 0.0, 0.2]],
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    ]
).unsqueeze(1)
TARGET = torch.tensor(
    [
        [[1, 0, 0], [1, 1, 0]],
        [[0, 0, 1], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 0]],
    ],
    dtype=torch.float32,
).unsqueeze(1)


def _stats():
    return get_stats(PRED, TARGET)


def test_get_stats_hand_counted():
    tp, fp, fn, tn = _stats()
    assert tp.dtype == torch.long and tp.shape == (3,)
    assert tp.tolist() == [2, 0, 0]
    assert fp.tolist() == [1, 0, 0]
    assert fn.tolist() == [1, 1, 0]
    assert tn.tolist() == [2, 5, 6]


def test_get_stats_accepts_nhw_and_bool():
    stats = get_stats(PRED[:, 0] >= 0.5, TARGET[:, 0].bool())
    for a, b in zip(stats, _stats(), strict=True):
        assert torch.equal(a, b)


def test_get_stats_threshold():
    tp, fp, fn, tn = get_stats(PRED, TARGET, threshold=0.8)
    # Only the 0.9 pixel of image A stays foreground.
    assert tp.tolist() == [1, 0, 0]
    assert fp.tolist() == [0, 0, 0]
    assert fn.tolist() == [2, 1, 0]


def test_get_stats_binarises_soft_targets_at_half():
    pred = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    soft = torch.tensor([[[0.5, 0.4, 0.6, 0.1]]])  # -> [1, 0, 1, 0]
    tp, fp, fn, tn = get_stats(pred, soft)
    assert (tp.item(), fp.item(), fn.item(), tn.item()) == (1, 1, 1, 1)


def test_get_stats_rejects_logits_and_bad_shapes():
    with pytest.raises(ValueError, match="sigmoid"):
        get_stats(torch.tensor([[[2.0, -1.0]]]), torch.tensor([[[1.0, 0.0]]]))
    with pytest.raises(ValueError, match="same shape"):
        get_stats(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        get_stats(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2))


def test_scores_per_image():
    stats = _stats()
    torch.testing.assert_close(iou_score(*stats, reduction="none"), torch.tensor([2 / 4, 0.0, 1.0]).double())
    torch.testing.assert_close(dice_score(*stats, reduction="none"), torch.tensor([4 / 6, 0.0, 1.0]).double())
    torch.testing.assert_close(pixel_accuracy(*stats, reduction="none"), torch.tensor([4 / 6, 5 / 6, 1.0]).double())


def test_scores_mean_and_micro():
    stats = _stats()
    # mean: (1/2 + 0 + 1) / 3 = 1/2 ; (2/3 + 0 + 1) / 3 = 5/9 ; (4/6 + 5/6 + 6/6) / 3 = 5/6
    assert iou_score(*stats).item() == pytest.approx(1 / 2)
    assert dice_score(*stats).item() == pytest.approx(5 / 9)
    assert pixel_accuracy(*stats).item() == pytest.approx(5 / 6)
    # micro: pooled tp=2 fp=1 fn=2 tn=13 -> IoU 2/5, Dice 4/7, accuracy 15/18
    assert iou_score(*stats, reduction="micro").item() == pytest.approx(2 / 5)
    assert dice_score(*stats, reduction="micro").item() == pytest.approx(4 / 7)
    assert pixel_accuracy(*stats, reduction="micro").item() == pytest.approx(15 / 18)


def test_empty_masks_and_zero_division():
    empty = torch.zeros(1, 1, 2, 2)
    one = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
    # empty prediction, empty target: a perfect answer by default, configurable
    assert iou_score(*get_stats(empty, empty)).item() == 1.0
    assert dice_score(*get_stats(empty, empty)).item() == 1.0
    assert iou_score(*get_stats(empty, empty), zero_division=0.0).item() == 0.0
    assert dice_score(*get_stats(empty, empty), zero_division=0.0).item() == 0.0
    # one side empty: plain 0, whatever zero_division says
    assert iou_score(*get_stats(empty, one), zero_division=1.0).item() == 0.0
    assert dice_score(*get_stats(one, empty), zero_division=1.0).item() == 0.0
    # zero_division also drives the mean: (1/2 + 0 + 0) / 3
    assert iou_score(*_stats(), zero_division=0.0).item() == pytest.approx(1 / 6)


def test_unknown_reduction():
    with pytest.raises(ValueError, match="micro"):
        iou_score(*_stats(), reduction="sum")


def test_agrees_with_torchmetrics():
    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(4, 1, 16, 16, generator=gen)
    target = (torch.rand(4, 1, 16, 16, generator=gen) > 0.6).float()
    stats = get_stats(probs, target)
    tgt = target.long()

    per_image_iou = torch.stack([binary_jaccard_index(p, t) for p, t in zip(probs, tgt, strict=True)])
    torch.testing.assert_close(iou_score(*stats, reduction="none").float(), per_image_iou, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        iou_score(*stats, reduction="micro").float(), binary_jaccard_index(probs, tgt), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        dice_score(*stats, reduction="none").float(),
        binary_f1_score(probs[:, 0], tgt[:, 0], multidim_average="samplewise"),
        atol=1e-6,
        rtol=0,
    )
    torch.testing.assert_close(
        dice_score(*stats, reduction="micro").float(), binary_f1_score(probs, tgt), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        pixel_accuracy(*stats, reduction="none").float(),
        binary_accuracy(probs[:, 0], tgt[:, 0], multidim_average="samplewise"),
        atol=1e-6,
        rtol=0,
    )
    torch.testing.assert_close(
        pixel_accuracy(*stats, reduction="micro").float(), binary_accuracy(probs, tgt), atol=1e-6, rtol=0
    )


def test_accumulator_hand_counted():
    acc = MetricAccumulator()
    acc.update(PRED, TARGET)
    out = acc.compute()
    assert set(out) == {"dice", "iou", "pixel_accuracy", "iou_micro", "mae"}
    assert out["dice"] == pytest.approx(5 / 9)
    assert out["iou"] == pytest.approx(1 / 2)
    assert out["pixel_accuracy"] == pytest.approx(5 / 6)
    assert out["iou_micro"] == pytest.approx(2 / 5)
    # |p - t| summed per image: 0.1+0.6+0.1+0.8+0.5+0.4 = 2.5 and 0+0.3+0.51+0.1+0+0.2 = 1.11, over 6 pixels each
    assert out["mae"] == pytest.approx((2.5 / 6 + 1.11 / 6 + 0.0) / 3)
    assert acc.num_images == 3


def test_accumulator_batches_equal_concatenation():
    gen = torch.Generator().manual_seed(1)
    probs = torch.rand(5, 1, 8, 8, generator=gen)
    target = (torch.rand(5, 1, 8, 8, generator=gen) > 0.5).float()
    target[4] = 0.0  # include an empty target

    whole = MetricAccumulator()
    whole.update(probs, target)
    parts = MetricAccumulator()
    parts.update(probs[:2], target[:2])
    parts.update(probs[2:], target[2:])
    torch.testing.assert_close(parts.state_tensor(), whole.state_tensor())
    assert parts.compute() == pytest.approx(whole.compute())
    # per-image mean, not a mean of batch means (batches of 2 and 3 differ)
    assert whole.compute()["iou"] == pytest.approx(iou_score(*get_stats(probs, target)).item())


def test_accumulator_state_round_trip_and_ddp_sum():
    gen = torch.Generator().manual_seed(2)
    probs = torch.rand(4, 1, 8, 8, generator=gen)
    target = (torch.rand(4, 1, 8, 8, generator=gen) > 0.5).float()
    whole = MetricAccumulator()
    whole.update(probs, target)

    # Two "ranks", each with its own shard; summing their states is what all_reduce does.
    rank0, rank1 = MetricAccumulator(), MetricAccumulator()
    rank0.update(probs[:1], target[:1])
    rank1.update(probs[1:], target[1:])
    state = rank0.state_tensor() + rank1.state_tensor()
    assert state.dtype == torch.float64 and state.ndim == 1

    merged = MetricAccumulator()
    merged.load_state_tensor(state)
    assert merged.compute() == pytest.approx(whole.compute())

    # both directions copy, so the caller's all_reduce buffer and the accumulator never alias
    state.zero_()
    merged.state_tensor().zero_()
    assert merged.num_images == 4

    merged.reset()
    assert merged.num_images == 0
    with pytest.raises(RuntimeError, match="update"):
        merged.compute()
    with pytest.raises(ValueError, match="state_tensor"):
        merged.load_state_tensor(torch.zeros(3, dtype=torch.float64))


def test_accumulator_all_empty_images():
    acc = MetricAccumulator()
    acc.update(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    assert acc.compute() == {"dice": 1.0, "iou": 1.0, "pixel_accuracy": 1.0, "iou_micro": 1.0, "mae": 0.0}
    acc0 = MetricAccumulator(zero_division=0.0)
    acc0.update(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    assert acc0.compute()["iou"] == 0.0 and acc0.compute()["iou_micro"] == 0.0


def test_soft_error_tells_a_hesitant_mask_from_a_confident_one_and_skips_ignored_pixels():
    target = torch.tensor([[[1.0, 1.0, 0.0, -1.0]]])  # the last pixel is ignored (an ignore/ mask)
    confident = torch.tensor([[[1.0, 0.9, 0.0, 1.0]]])
    hesitant = torch.tensor([[[0.6, 0.6, 0.4, 0.0]]])  # thresholded, the same mask as `confident`
    assert get_stats(confident, target) == get_stats(hesitant, target)
    assert soft_error(confident, target).tolist() == pytest.approx([0.1 / 3])
    assert soft_error(hesitant, target).tolist() == pytest.approx([1.2 / 3])
    # a bool mask counts as 0/1; an image with no labelled pixel scores 0
    assert soft_error(torch.tensor([[[True, False, False, True]]]), target).tolist() == pytest.approx([1 / 3])
    assert soft_error(hesitant, torch.full((1, 1, 4), -1.0)).tolist() == [0.0]
    with pytest.raises(ValueError, match="same shape"):
        soft_error(hesitant, target[..., :3])
