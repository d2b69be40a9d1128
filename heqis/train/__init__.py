"""Multi-GAN training: presets, data preparation, the multi-agent adversarial trainer, checkpoints."""
