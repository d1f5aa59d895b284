"""A running average of the weights (``--ema DECAY``): what is scored and saved is the mean of the recent steps.

Fine-tunes of the shipped default move coco_train by up to 0.036 IoU between neighbouring epochs (11 photos; see
docs/experiments.md): the weights at the end of an epoch are one noisy point of where training wanders. The
exponential moving average of the weights (as timm's ``ModelEmaV2`` keeps it) is a soup over the last ~1/(1-DECAY)
steps, made while training instead of from saved epochs afterwards.

After each optimizer step ``update`` moves every floating-point tensor of the state dict (weights and batch-norm
running statistics) towards the live one; integer buffers are copied. By default there is no warm-up: the average starts
at the weights the run starts from and keeps DECAY^n of them after n steps (0.995^375 = 0.15 after three epochs of 125
steps), which for a fine-tune is a soup with its start; a run from a fresh init (or a fresh head) needs a few
thousand steps before the average forgets it, and its first epochs' saved weights and scores are mostly the random
init (fast v31: select 0.004 after epoch 1). ``--ema-warmup`` lets the decay grow with the step count instead,
``min(DECAY, (1 + n) / (10 + n))`` after n updates (TensorFlow's ``num_updates`` rule): the first update moves 90% of
the way to the live weights, the 100th keeps 0.92 of the average, and DECAY 0.995 is reached after about 1800 steps.
``applied(model)`` swaps the average into the model for scoring and saving, and puts the live
weights back after.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)


class WeightAverage:
    """The exponential moving average of ``model``'s state dict."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"--ema must be in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next update uses: DECAY, or with warm-up the smaller ``(1 + n) / (10 + n)`` early on."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for name, live in model.state_dict().items():
            mean = self.shadow[name]
            if mean.is_floating_point():
                mean.lerp_(live.detach().to(mean.dtype), 1.0 - d)
            else:
                mean.copy_(live)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
        """The averaged weights in ``model`` while the block runs (it gets a copy of the live state dict), the live
        ones back after, also on error."""
        live = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield live
        finally:
            model.load_state_dict(live)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("the saved weight average does not match this model's tensors")
        if state.get("decay") not in (None, self.decay):
            log.info("the running average was kept with decay %s; it goes on with --ema %s", state["decay"], self.decay)
        self.updates = int(state["updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
