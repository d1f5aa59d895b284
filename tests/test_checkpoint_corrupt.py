"""A damaged checkpoint (a cut copy, a full disk during a save) is named as such, in one line."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from personseg.models.checkpoint import FORMAT, read_checkpoint  # noqa: E402


@pytest.fixture()
def saved(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"format": FORMAT, "version": 1, "state_dict": {"w": torch.zeros(2000)}}, path)
    return path


@pytest.mark.parametrize("keep", [0.5, 0.99, -30])
def test_a_truncated_checkpoint_says_it_is_truncated(saved, keep) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:keep])
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        read_checkpoint(saved)
    message = str(info.value)
    assert message.startswith(str(saved)) and "\n" not in message and "Errno" not in message


def test_a_damaged_record_is_reported_as_corrupt(saved) -> None:
    data = bytearray(saved.read_bytes())
    data[200] ^= 0xFF  # inside data.pkl, the record torch reads first
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_checkpoint(saved)


def test_not_a_checkpoint_at_all_is_one_short_line(tmp_path) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(b"\x00" * 300)
    with pytest.raises(ValueError, match="not a readable personseg checkpoint") as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400
