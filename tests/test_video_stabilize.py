"""The temporal stabiliser: less flicker where nothing moves, no lag where something does."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from personseg.video import Stabilizer


def flicker(probs: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(probs)]))


def scene(h: int, w: int, edge: int) -> tuple[np.ndarray, np.ndarray]:
    """A frame (bright left of ``edge``, dark right) and its truth probability, at the same size."""
    truth = np.zeros((h, w), np.float32)
    truth[:, :edge] = 1.0
    frame = np.where(truth[..., None] > 0, 210, 40).astype(np.uint8).repeat(3, axis=2)
    return frame, truth


def test_static_noisy_input_flickers_at_most_half_as_much():
    rng = np.random.default_rng(0)
    frame, truth = scene(48, 64, 30)
    soft = np.clip(truth * 0.8 + 0.1, 0, 1)
    raw, smoothed = [], []
    stab = Stabilizer()
    for _ in range(40):
        noisy_frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
        prob = np.clip(soft + rng.normal(0, 0.15, soft.shape), 0, 1).astype(np.float32)
        raw.append(prob)
        smoothed.append(stab.update(prob, noisy_frame))
    assert flicker(smoothed[5:]) <= 0.5 * flicker(raw[5:])
    # and it stays unbiased: the average is still the clean probability
    assert np.abs(np.mean(smoothed[5:], axis=0) - soft).mean() < 0.05


def test_moving_edge_is_followed_immediately():
    rng = np.random.default_rng(1)
    stab = Stabilizer(strength=0.9)
    for t in range(20):
        edge = 10 + 2 * t
        frame, truth = scene(48, 64, edge)
        prob = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1).astype(np.float32)
        out = stab.update(prob, frame)
        if t:
            newly = slice(edge - 2, edge)  # the columns the edge just swept over
            assert out[:, newly].mean() > 0.85, t
            assert np.abs(out - truth).mean() < 0.05


def test_confident_new_prediction_is_taken_over_an_unsure_past():
    stab = Stabilizer(strength=0.9)
    frame = np.full((16, 16, 3), 100, np.uint8)
    stab.update(np.full((16, 16), 0.5, np.float32), frame)
    out = stab.update(np.ones((16, 16), np.float32), frame)
    assert out.min() > 0.9  # weight on the unsure past: 0.9 * (1 + 0 - 1) = 0


def test_scene_cut_and_strength_zero_pass_the_prediction_through():
    rng = np.random.default_rng(2)
    prob = rng.random((16, 16)).astype(np.float32)
    off = Stabilizer(strength=0.0)
    off.update(rng.random((16, 16)).astype(np.float32), np.zeros((16, 16, 3), np.uint8))
    assert np.array_equal(off.update(prob, np.zeros((16, 16, 3), np.uint8)), prob)
    stab = Stabilizer()
    stab.update(rng.random((16, 16)).astype(np.float32), np.zeros((16, 16, 3), np.uint8))
    assert np.array_equal(stab.update(prob, np.full((16, 16, 3), 255, np.uint8)), prob)


def test_stabilizer_validates_its_settings():
    with pytest.raises(ValueError, match="strength"):
        Stabilizer(strength=1.0)
    with pytest.raises(ValueError, match="motion_low"):
        Stabilizer(motion_low=0.1, motion_high=0.05)
