"""Training engine: the torch Dataset, paired augmentation, the optimisation loop, metrics."""
