"""Diffusion models on real data: datasets, networks, DDPM/DDIM, trainer, monitors."""
