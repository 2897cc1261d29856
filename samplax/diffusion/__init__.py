"""Diffusion: forward processes and score models (shared by the diffusion samplers and Feynman-Kac correctors)."""

from samplax.diffusion.process import Process, ve, vp, vp_cosine
from samplax.diffusion.score import ScoreModel, mixture_sample


def train(*args, **kwargs):
    """Train a learned sampler (pis, dds, cmcd, scld, nets) for an unnormalised density; see
    `samplax.diffusion.learned.train`."""
    from samplax.diffusion.learned import train as _train

    return _train(*args, **kwargs)


def load_trained(path):
    """Reload a trained PIS / DDS sampler; see `samplax.diffusion.learned.load_trained`."""
    from samplax.diffusion.learned import load_trained as _load

    return _load(path)


__all__ = ["Process", "ScoreModel", "load_trained", "mixture_sample", "train", "ve", "vp", "vp_cosine"]


def __getattr__(name):
    """Submodules not imported above load on first use (`samplax._lazy`)."""
    from samplax._lazy import submodule

    return submodule(__name__, name)
