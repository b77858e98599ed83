"""Training one model: data loading, augmentation, the optimisation loop, checkpoints."""
