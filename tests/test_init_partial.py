"""``--init-from`` with ``--init-partial``: a trained encoder under a new decoder (the fast tier's redesign)."""

from __future__ import annotations

import pytest
import torch

from personseg.models import create_model, save_checkpoint
from personseg.training.builders import init_weights
from personseg.training.config import TrainConfig


def _lite0(**kwargs):
    torch.manual_seed(len(kwargs))
    return create_model("deeplabv3plus", encoder="efficientnet_lite0", encoder_weights=None, **kwargs)


@pytest.fixture(scope="module")
def donor(tmp_path_factory):
    model = _lite0(encoder_depth=5)
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.add_(0.25)  # unlike any fresh init, so a taken tensor is recognisable
    path = tmp_path_factory.mktemp("donor") / "donor.pt"
    save_checkpoint(model, path)
    return model, path


def test_partial_init_takes_the_encoder_and_leaves_the_new_decoder_fresh(donor):
    source, path = donor
    model = _lite0(encoder_depth=4, decoder_channels=64)
    fresh = {key: value.clone() for key, value in model.state_dict().items()}
    taken = init_weights(model, str(path), partial=True, log_it=False)
    own, theirs = model.state_dict(), source.state_dict()
    encoder = [key for key in own if ".encoder." in key]
    assert encoder and all(torch.equal(own[key], theirs[key]) for key in encoder)
    changed_shape = [key for key in own if key in theirs and theirs[key].shape != own[key].shape]
    assert changed_shape, "the 64-channel decoder should differ from the donor's"
    assert all(torch.equal(own[key], fresh[key]) for key in changed_shape)
    assert len(encoder) <= taken < len(own)


def test_whole_init_refuses_another_shape_and_partial_refuses_a_stranger(donor, tmp_path):
    _, path = donor
    with pytest.raises(RuntimeError, match="size mismatch"):
        init_weights(_lite0(encoder_depth=4, decoder_channels=64), str(path))
    stranger = tmp_path / "unet.pt"
    save_checkpoint(create_model("unet", base_channels=4), stranger)
    with pytest.raises(ValueError, match="no tensor matches"):
        init_weights(_lite0(encoder_depth=4), str(stranger), partial=True)


def test_init_partial_needs_init_from():
    with pytest.raises(ValueError, match="--init-from"):
        TrainConfig(init_partial=True)
    assert TrainConfig(init_from="x.pt", init_partial=True).init_partial
