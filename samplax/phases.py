"""The per-phase programs of a chain run (initial positions, warmup or burn-in, kernel start, sampling chunks).

Every phase maps over a leading chain axis with vmap ("sequential" layouts call it with one chain).

Random streams: chain `c` has the key `fold_in(key(seed), c)`; each phase folds its own stream number into
it, and a phase that takes several steps folds the step index into its stream key. A stream key is either
used as a key (START) or only as the parent of per-step keys (WARMUP, SAMPLE) or handed whole to code that
derives its own keys (INIT_POSITION -> `target.init`, WARMUP -> a sampler's adaptive warmup), never both:
`fold_in(k, 0) == split(k)[0]`, so a key that is consumed and also folded into would hand the same bits to
two consumers. Draws therefore do not depend on chain layout, chunking or checkpoints.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from samplax.progress import Progress
from samplax.samplers.base import Sampler
from samplax.target import Target

INIT_POSITION, WARMUP, SAMPLE, START = 0, 1, 2, 3


def stream(chain_keys, number):
    return jax.vmap(lambda ck: jax.random.fold_in(ck, number))(chain_keys)


class Phases:
    """The phase functions for one (target, sampler, thinning, warmup length, progress, keep_warmup)."""

    def __init__(self, target: Target, sampler: Sampler, thinning: int, num_warmup: int, progress: Progress,
                 keep_warmup: bool):
        self.target, self.sampler, self.thinning, self.num_warmup = target, sampler, thinning, num_warmup
        self.progress, self.keep_warmup = progress, keep_warmup

    def init_positions(self, chain_keys):
        return jax.vmap(self.target.init)(stream(chain_keys, INIT_POSITION))

    def warmup(self, chain_keys, positions):
        """Adaptive warmup if the sampler has one, else `num_warmup` burn-in steps with the initial params.

        Returns (states, params, trace). Without `keep_warmup` the trace holds only each chain's total
        gradient count, so warmup draws are neither returned from the device nor copied to the host.
        """
        s = self.sampler
        if s.warmup is not None:
            w = jax.vmap(lambda k, pos: s.warmup(self.target, k, pos, self.num_warmup))(
                stream(chain_keys, WARMUP), positions)
            states, params, trace = w.state, w.params, w.trace
        else:
            params = jax.vmap(lambda _: s.initial_params(self.target))(chain_keys)
            states = self.start(chain_keys, positions, params)
            states, (pos, stats) = self._burn_in(chain_keys, states, params)
            trace = {"position": pos, **stats}
        if not self.keep_warmup:
            totals = {"n_grad_total": (trace["n_grad_total"] if "n_grad_total" in trace
                                       else jnp.sum(trace["n_grad"], axis=1))}
            if "nonfinite" in trace:  # burn-in steps of a sampler that reverts non-finite steps: how many, per chain
                totals["n_reverted_total"] = jnp.sum(jnp.asarray(trace["nonfinite"], jnp.int32), axis=1)
            trace = totals
        return states, params, trace

    def start(self, chain_keys, positions, params):
        def one(key, pos, p):
            return self.sampler.build(self.target, p).init(pos, key)

        return jax.vmap(one)(stream(chain_keys, START), positions, params)

    def _step_all(self, stream_keys, states, params, t):
        """One step of every chain, with step key `fold_in(stream key, t)`; returns (states, stats)."""
        s, target = self.sampler, self.target

        def one(sk, st, p):
            new, info = s.build(target, p).step(jax.random.fold_in(sk, t), st)
            return new, s.stats(new, info, p)

        return jax.vmap(one)(stream_keys, states, params)

    def _burn_in(self, chain_keys, states, params):
        """`num_warmup` plain steps (no thinning: warmup counts steps); per-step positions and stats."""
        keys = stream(chain_keys, WARMUP)

        def body(states, t):
            states, stats = self._step_all(keys, states, params, t)
            return states, (states.position, stats)

        states, ys = jax.lax.scan(body, states, jnp.arange(self.num_warmup))
        return states, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), ys)  # chain axis first

    def chunk(self, chain_keys, states, params, t0, n, bar_args, size):
        """Advance all chains by `n` kept draws (each `thinning` steps) from draw index `t0`.

        `t0`, `n` (<= `size`) and `bar_args` (progress-bar period and last draw) are runtime values, so one
        compiled program of buffer length `size` serves every run length; only the first `n` rows of the
        returned buffers are draws (a while loop runs exactly `n` draws, no step is wasted)."""
        thin, bar = self.thinning, self.progress
        keys = stream(chain_keys, SAMPLE)
        bar_every, bar_last = bar_args[0], bar_args[1]

        def draw_step(states, draw):
            n_grad, div, acc, rev = 0, False, 0.0, 0
            for j in range(thin):
                states, stats = self._step_all(keys, states, params, draw * thin + j)
                n_grad = n_grad + stats["n_grad"]
                div = div | stats.get("diverging", False)
                acc = acc + stats.get("acceptance_rate", 0.0)
                if "nonfinite" in stats:
                    rev = rev + jnp.asarray(stats["nonfinite"], jnp.int32)
            # a kept draw reports the thinned-away steps too: gradients summed, any divergence, mean acceptance,
            # reverted non-finite steps (`nonfinite`: any since the last kept draw; `n_reverted`: how many)
            out = {**stats, "n_grad": n_grad}
            if "diverging" in stats:
                out["diverging"] = div
            if "acceptance_rate" in stats:
                out["acceptance_rate"] = acc / thin
            if "nonfinite" in stats:
                out["nonfinite"], out["n_reverted"] = rev > 0, rev
            return states, (states.position, out)

        shapes = jax.eval_shape(draw_step, states, t0)[1]
        buffers = jax.tree.map(lambda s: jnp.zeros((size, *s.shape), s.dtype), shapes)

        def body(i, carry):
            states, n_div, buffers = carry
            draw = t0 + i
            states, ys = draw_step(states, draw)
            if bar.enabled:  # the running divergence count only feeds the progress bar
                n_div = n_div + jnp.sum(ys[1].get("diverging", False)).astype(n_div.dtype)
                bar.update(draw, ys[1].get("acceptance_rate"), n_div, bar_every, bar_last)
            buffers = jax.tree.map(lambda b, y: jax.lax.dynamic_update_index_in_dim(b, y, i, 0), buffers, ys)
            return states, n_div, buffers

        states, _, ys = jax.lax.fori_loop(0, n, body, (states, jnp.zeros((), jnp.int32), buffers))
        return states, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), ys)  # chain axis first
