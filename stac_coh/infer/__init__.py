"""Infer stage: tiled streaming inference and the estimators behind it."""
