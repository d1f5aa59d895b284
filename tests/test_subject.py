"""Main-subject selection: the most prominent person and whoever touches them; stable choice in video."""

from __future__ import annotations

import numpy as np
import pytest

from personseg.inference.subject import SubjectTracker, check_subject, find_regions, main_subject


def blob(alpha: np.ndarray, y0: int, y1: int, x0: int, x1: int, value: float = 1.0) -> np.ndarray:
    alpha[y0:y1, x0:x1] = value
    return alpha


def scene() -> np.ndarray:
    """A dancer in the middle and a small audience along the top edge."""
    a = np.zeros((240, 320), np.float32)
    blob(a, 60, 220, 130, 190)  # dancer
    blob(a, 0, 30, 10, 40)  # audience
    blob(a, 0, 25, 250, 280)
    return a


def test_main_keeps_the_central_large_person_and_drops_the_audience():
    a = scene()
    out = main_subject(a)
    assert out[100:200, 140:180].min() == 1.0
    assert out[0:25, 10:40].max() == 0.0 and out[0:20, 250:280].max() == 0.0


def test_people_touching_the_main_person_are_kept():
    a = scene()
    blob(a, 80, 220, 190, 230)  # a partner holding the dancer's hand: touches the dancer
    out = main_subject(a)
    assert out[100:200, 195:225].min() == 1.0
    assert out[0:25, 10:40].max() == 0.0


def test_soft_rims_stay_with_their_person():
    a = scene()
    a[58:60, 130:190] = 0.3  # soft hair above the dancer
    out = main_subject(a)
    assert out[58:60, 140:180].min() == pytest.approx(0.3)


def test_a_single_person_and_an_empty_frame_are_unchanged():
    one = blob(np.zeros((100, 100), np.float32), 20, 90, 30, 60)
    assert np.array_equal(main_subject(one), one)
    empty = np.zeros((50, 80), np.float32)
    assert np.array_equal(main_subject(empty), empty)


def test_sharper_region_wins_between_equal_sizes():
    rng = np.random.default_rng(0)
    rgb = np.full((100, 200, 3), 128, np.uint8)
    rgb[20:80, 130:170] = rng.integers(0, 255, (60, 40, 3))  # textured (in focus) person on the right
    a = np.zeros((100, 200), np.float32)
    blob(a, 20, 80, 30, 70)  # same size, same distance from the centre, flat (blurred)
    blob(a, 20, 80, 130, 170)
    regions = find_regions(a, rgb)
    assert regions.count == 2
    out = main_subject(a, rgb)
    assert out[30:70, 140:160].min() == 1.0 and out[30:70, 40:60].max() == 0.0


def test_tracker_keeps_its_person_when_a_bigger_one_walks_past():
    tracker = SubjectTracker()
    first = blob(np.zeros((200, 300), np.float32), 50, 190, 120, 170)
    assert tracker(first)[100, 140] == 1.0
    for step in range(6):  # a larger person enters from the left, never touching
        frame = blob(np.zeros((200, 300), np.float32), 50, 190, 120 + step, 170 + step)
        blob(frame, 10, 200, 8 * step, 70 + 8 * step)  # bigger and nearer the camera, 15+ px away
        out = tracker(frame)
        assert out[100, 140 + step] == 1.0, step
        assert out[100, 8 * step + 5] == 0.0, step


def test_tracker_chooses_afresh_after_the_subject_is_gone():
    tracker = SubjectTracker(patience=2)
    tracker(blob(np.zeros((100, 100), np.float32), 20, 90, 10, 30))
    other = blob(np.zeros((100, 100), np.float32), 20, 90, 60, 90)
    outs = [tracker(other) for _ in range(4)]
    assert outs[0].max() == 0.0  # a moment of occlusion: nobody new yet
    assert outs[-1][50, 75] == 1.0  # then the one left in view


def test_tracker_finds_its_subject_again_after_she_was_hidden():
    """dance-jump: while the dancer is behind the grass the choice goes to someone in the audience; when she comes
    back (a region of her size, scoring higher) she is the subject again, not the small bystander."""
    tracker = SubjectTracker(patience=2)

    def frame(dancer: bool) -> np.ndarray:
        a = blob(np.zeros((200, 300), np.float32), 5, 30, 10, 30)  # a small bystander in the corner
        return blob(a, 40, 190, 120, 180) if dancer else a

    assert tracker(frame(True))[100, 150] == 1.0
    hidden = [tracker(frame(False)) for _ in range(4)]
    assert hidden[-1][15, 20] == 1.0  # with nobody else in view, the bystander is chosen afresh
    back = tracker(frame(True))
    assert back[100, 150] == 1.0 and back[15, 20] == 0.0


def test_tracker_does_not_jump_across_the_frame_when_its_subject_fades():
    """dance-jump with the fast model at 256x192: among the fountain's statues the dancer's probability fades to a
    fragment, and a bigger, higher-scoring audience group across the frame must not take over; when she is whole
    again she is still the subject."""
    tracker = SubjectTracker()

    def frame(dancer: tuple[int, int, int, int]) -> np.ndarray:
        a = blob(np.zeros((200, 300), np.float32), 0, 60, 0, 90)  # an audience group in the top-left corner
        return blob(a, *dancer)

    assert tracker(frame((40, 190, 150, 210)))[100, 180] == 1.0
    faded = tracker(frame((100, 120, 170, 190)))  # a fragment of her, under a third of her size
    assert faded[110, 180] == 1.0 and faded[30, 40] == 0.0
    whole = tracker(frame((40, 190, 155, 215)))
    assert whole[100, 185] == 1.0 and whole[30, 40] == 0.0


def test_tracker_does_not_wait_for_a_speck():
    """swing: as the woman swings away fast, the overlap can slip onto a speck; when she is found again elsewhere
    there is nothing to wait for (the wait is for a subject hidden for a moment, not for a speck)."""
    tracker = SubjectTracker()
    assert tracker(blob(np.zeros((200, 300), np.float32), 40, 190, 120, 180))[100, 150] == 1.0
    speck = blob(np.zeros((200, 300), np.float32), 100, 104, 150, 154)  # all that is left where she was
    assert tracker(speck)[102, 152] == 1.0
    back = tracker(blob(np.zeros((200, 300), np.float32), 40, 190, 200, 260))  # found again, further on
    assert back[100, 230] == 1.0


def test_bad_subject_value_is_named():
    assert check_subject("main") == "main"
    with pytest.raises(ValueError, match="--subject must be one of all, main"):
        check_subject("largest")
