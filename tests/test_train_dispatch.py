"""`samplax.diffusion.learned.train(target, kind)`: one entry point for every learned sampler."""

import pytest

import samplax
from samplax.diffusion.learned import ControlledSampler, TrainedSampler, train
from samplax.diffusion.learned.nets import NetsSampler


@pytest.fixture(scope="module")
def gauss():
    return samplax.models.get("gaussian", dim=2)


@pytest.mark.parametrize("kind, cls, loss", [("dds", TrainedSampler, "kl"), ("cmcd", ControlledSampler, "log_variance"),
                                             ("scld", ControlledSampler, "log_variance"), ("nets", NetsSampler, "pinn")])
def test_each_kind_trains_its_sampler_with_its_default_loss(gauss, kind, cls, loss):
    tr = train(gauss, kind, num_steps=4, num_iterations=2, batch_size=8, progress=False)
    assert isinstance(tr, cls) and tr.config["loss"] == loss
    dt = samplax.sample(gauss, tr, num_particles=64, num_chains=2, progress=False)
    assert dt.posterior["x"].shape == (2, 64, 2)


def test_unknown_kind_and_settings_are_named(gauss):
    with pytest.raises(ValueError, match="kind must be one of"):
        train(gauss, "ddpm")
    with pytest.raises(TypeError, match="sigma_max"):
        train(gauss, "dds", sigma_max=2.0)


@pytest.mark.parametrize("kind, wrong, meant", [("pis", "num_iteration", "num_iterations"),
                                                ("scld", "num_subtrajectory", "num_subtrajectories"),
                                                ("nets", "divergance", "divergence")])
def test_a_misspelled_option_gets_a_did_you_mean(gauss, kind, wrong, meant):
    # before: Python's "got an unexpected keyword argument" from the trainer, with no hint or list of options
    with pytest.raises(TypeError, match=f"unknown option '{wrong}'; did you mean {meant}\\? \\(options: .*{meant}"):
        train(gauss, kind, **{wrong: 1})
