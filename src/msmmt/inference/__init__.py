"""Using a trained model: prediction on new clips and explanations."""
