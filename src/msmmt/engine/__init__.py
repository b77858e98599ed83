"""Training engine: the torch Dataset and paired augmentation, the optimisation loop and its
pieces (optimiser and schedule, early stopping, history, seeding and precision), metrics,
and saving a trained model with what a predictor needs."""
