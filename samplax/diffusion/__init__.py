"""Diffusion: forward processes and score models (shared by the diffusion samplers and Feynman-Kac correctors)."""

from samplax.diffusion.process import Process, ve, vp, vp_cosine
from samplax.diffusion.score import ScoreModel, mixture_sample

__all__ = ["Process", "ScoreModel", "mixture_sample", "ve", "vp", "vp_cosine"]
