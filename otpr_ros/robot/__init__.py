"""The robot side of fine-tuning: transitions from a robot's own topics."""
