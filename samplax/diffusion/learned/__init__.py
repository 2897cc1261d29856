"""Learned diffusion samplers for unnormalised densities: PIS and DDS with KL or log-variance training."""

from samplax.diffusion.learned.sampler import TrainedSampler, load_trained
from samplax.diffusion.learned.train import train

__all__ = ["TrainedSampler", "load_trained", "train"]
