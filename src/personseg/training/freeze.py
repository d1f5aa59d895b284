"""Training part of a network (``--train-only``): the rest keeps its weights and its batch-norm statistics."""

from __future__ import annotations

import torch


def _matches(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def freeze_all_but(model: torch.nn.Module, prefixes: list[str]) -> int:
    """Stop gradients to every parameter outside ``prefixes``; returns how many parameters still train.

    An empty ``prefixes`` trains everything. A prefix that names no parameter is an error, since then the run
    would train nothing it was asked to."""
    if not prefixes:
        return sum(p.numel() for p in model.parameters())
    names = [name for name, _ in model.named_parameters()]
    unknown = [p for p in prefixes if not any(_matches(name, [p]) for name in names)]
    if unknown:
        roots = sorted({name.split(".")[0] for name in names})
        raise ValueError(f"--train-only {unknown}: no parameter of this model is under it; its parts: {roots}")
    for name, param in model.named_parameters():
        param.requires_grad_(_matches(name, prefixes))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def keep_frozen_statistics(model: torch.nn.Module, prefixes: list[str]) -> None:
    """After ``model.train()``: the batch norms outside ``prefixes`` back in eval mode, so that frozen parts keep
    the running statistics they were trained with and compute exactly what they did."""
    if not prefixes:
        return
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not _matches(name, prefixes):
            module.eval()
