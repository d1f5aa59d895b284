"""Training (needs the ``[train]`` extra): config, data/model builders, the loop, DDP helpers, plots."""
