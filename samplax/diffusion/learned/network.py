"""The control network u(x, t): an MLP on (x, Fourier time features) plus a time-dependent gain on the clipped target score.

PIS-Grad (Zhang & Chen 2022, sec. 3.3) / DDS (Vargas et al. 2023): u(x, t) = NN1(x / c, emb(t)) / c + NN2(emb(t)) * clip(grad log pi(x)).
The last layers start at zero so the untrained sampler is the reference process (u = 0). c = input_scale (train()
sets it to the reference scale sigma) makes NN1 dimensionless: u has units 1/length like the score, so NN1 reads
x in units of c and its output is divided by c. On GMM40 (|x| up to 50, sigma 25-30) at the quick settings of
benchmarks/diffusion_learned.py this took PIS from 19-21 to 39-40 of 40 modes and DDS log-variance from 36 to 38;
DDS's reverse-KL training stayed unstable there (18/40) until training stopped the gradient through the score input
(`train(detach_score=True)`, as the reference codes do): 37/40 at learning rate 3e-4.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from samplax import checks


def fourier_features(t, num_freqs: int):
    """[sin(2^j pi t), cos(2^j pi t)]_{j<num_freqs} of a scalar t in [0, 1]."""
    freqs = (2.0 ** jnp.arange(num_freqs)) * jnp.pi
    return jnp.concatenate([jnp.sin(freqs * t), jnp.cos(freqs * t)])


def zero_last(mlp: eqx.nn.MLP) -> eqx.nn.MLP:
    """`mlp` with its last layer zeroed: the network starts at 0 (no control / drift)."""
    last = mlp.layers[-1]
    last = eqx.tree_at(lambda l: (l.weight, l.bias), last, (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)))
    return eqx.tree_at(lambda m: m.layers[-1], mlp, last)


TIME_EMBEDDINGS = ("fourier", "pis")


class PISTime(eqx.Module):
    """PIS-Grad's time code (Zhang & Chen 2022; the DDS code's PISGRADNet): [sin, cos](c_j t + phase_j) with
    c = linspace(0.1, 100, channels) and a learnable phase, then a two-layer MLP to `channels` features."""

    phase: jax.Array
    coder: eqx.nn.MLP

    def __init__(self, channels: int, key):
        self.phase = jnp.zeros((channels,))
        self.coder = eqx.nn.MLP(2 * channels, channels, channels, 1, activation=jax.nn.gelu, key=key)

    def __call__(self, t):
        a = jnp.linspace(0.1, 100.0, self.phase.shape[0], dtype=self.phase.dtype) * t + self.phase
        return self.coder(jnp.concatenate([jnp.sin(a), jnp.cos(a)]))


class Control(eqx.Module):
    """u(x, t, score) for one x of shape (dim,).

    time_embedding "fourier": NN1 and NN2 read the 2 num_freqs features sin / cos(2^j pi t) directly; "pis": each
    reads its own PIS-Grad time code (`PISTime`, `width` channels), NN2 one layer deeper, as the DDS code's network.
    """

    state_net: eqx.nn.MLP
    gain_net: eqx.nn.MLP
    state_time: PISTime | None
    gain_time: PISTime | None
    num_freqs: int = eqx.field(static=True)
    clip: float = eqx.field(static=True)
    input_scale: float = eqx.field(static=True)

    def __init__(self, dim: int, key, width: int = 64, depth: int = 2, num_freqs: int = 8, clip: float = 100.0,
                 input_scale: float = 1.0, time_embedding: str = "fourier"):
        if not checks.member(time_embedding, TIME_EMBEDDINGS):
            raise ValueError(f"time_embedding must be one of {TIME_EMBEDDINGS}, got {time_embedding!r}")
        k1, k2, k3, k4 = jax.random.split(key, 4)
        pis = time_embedding == "pis"
        emb = width if pis else 2 * num_freqs
        self.state_net = zero_last(eqx.nn.MLP(dim + emb, dim, width, depth, activation=jax.nn.gelu, key=k1))
        self.gain_net = zero_last(eqx.nn.MLP(emb, dim, width, depth + int(pis), activation=jax.nn.gelu, key=k2))
        self.state_time = PISTime(width, k3) if pis else None
        self.gain_time = PISTime(width, k4) if pis else None
        self.num_freqs, self.clip, self.input_scale = num_freqs, float(clip), float(input_scale)

    def __call__(self, x, t, score):
        if self.state_time is None:
            e_state = e_gain = fourier_features(t, self.num_freqs)
        else:
            e_state, e_gain = self.state_time(t), self.gain_time(t)
        s = jnp.clip(score, -self.clip, self.clip)
        return (self.state_net(jnp.concatenate([x / self.input_scale, e_state])) / self.input_scale
                + self.gain_net(e_gain) * s)
