"""Training: the one training loop shared by every defense."""
