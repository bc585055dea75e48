"""Simulation, training data, training, evaluation and the offline demo catalog."""
