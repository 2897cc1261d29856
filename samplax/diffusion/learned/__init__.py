"""Learned diffusion samplers for unnormalised densities: PIS and DDS with KL or log-variance training; controlled
SMC (CMCD, SCLD) in `samplax.diffusion.learned.cmcd`."""

from samplax.diffusion.learned.cmcd import ControlledSampler, load_controlled, train_controlled
from samplax.diffusion.learned.sampler import TrainedSampler, load_trained
from samplax.diffusion.learned.train import train

__all__ = ["ControlledSampler", "TrainedSampler", "load_controlled", "load_trained", "train", "train_controlled"]
