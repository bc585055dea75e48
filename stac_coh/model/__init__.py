"""The Residual U-Net, its weights, model card and preprocessing."""
