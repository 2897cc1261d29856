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
from samplax.samplers.base import NONFINITE_FLAGS, Sampler
from samplax.target import Target

INIT_POSITION, WARMUP, SAMPLE, START = 0, 1, 2, 3
FUSED = True  # carry a `Sampler.adaptation` warmup through the sampling program (False: separate warmup program)


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
        reverted = {}
        if "nonfinite" in trace:  # burn-in steps of a sampler that reverts non-finite steps: how many, per chain
            reverted["n_reverted_total"] = jnp.sum(jnp.asarray(trace["nonfinite"], jnp.int32), axis=1)
        if "n_expensive" in trace:  # two_level's expensive evaluations, per chain (its warmup makes them too)
            reverted["n_expensive_total"] = jnp.sum(trace["n_expensive"], axis=1)
        if not self.keep_warmup:
            trace = {"n_grad_total": (trace["n_grad_total"] if "n_grad_total" in trace
                                      else jnp.sum(trace["n_grad"], axis=1)),
                     # an adaptive warmup's own count of reverted steps (the microcanonical Fisher tuner)
                     **({"n_reverted_total": trace["n_reverted_total"]} if "n_reverted_total" in trace else {})}
        return states, params, {**trace, **reverted}

    # ------------------------------------------------------------------ warmup carried through the sampling program
    def fused(self) -> bool:
        """Whether the warmup runs in the sampling program (`Sampler.adaptation`; one kernel step per draw, so
        thinning 1; `keep_warmup` records per-step warmup draws, which the separate warmup program does)."""
        return FUSED and self.sampler.adaptation is not None and self.thinning == 1 and not self.keep_warmup \
            and self.num_warmup > 0

    def begin(self, chain_keys, positions):
        """(states, params, adapting) at the start of the warmup: the kernel's initial state, the params of the
        first warmup step and the adaptation state (`Sampler.adaptation.begin`, with the warmup stream's key)."""
        a, target = self.sampler.adaptation, self.target

        def one(key, pos):
            state, ad = a.begin(target, key, pos, self.num_warmup)
            return state, a.params(target, ad), ad

        return jax.vmap(one)(stream(chain_keys, WARMUP), positions)

    def placeholders(self, chain_keys, positions):
        """Zeros shaped as `begin`'s (states, params, adapting_state): a resumed run is past its warmup, and the
        fused program reads no adaptation state when it samples."""
        shapes = jax.eval_shape(self.begin, chain_keys, positions)
        return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

    def fused_chunk(self, chain_keys, states, params, adapting_state, adapting, t0, n, bar_args, size):
        """The sampling program with the warmup in it. `adapting` (a runtime bool) runs the `num_warmup` warmup
        steps from `begin`'s output: the adaptation updated after every kernel step, nothing recorded, the final
        params returned. Otherwise it runs `n` draws from draw index `t0`, exactly as `chunk` with thinning 1. The
        kernel is traced once, so warmup and sampling share one compiled program.
        Returns (states, params, adapting_state, buffers)."""
        s, target, bar, a = self.sampler, self.target, self.progress, self.sampler.adaptation
        keys = stream(chain_keys, SAMPLE)
        bar_every, bar_last = bar_args[0], bar_args[1]
        with jax.ensure_compile_time_eval():
            schedule = jnp.asarray(a.schedule(self.num_warmup))

        def step_all(i, states, params, ad):
            row = schedule[jnp.minimum(i, self.num_warmup - 1)]

            def one(sk, st, p, adc):
                # warmup step i: the warmup's own key and the params in adaptation; draw t0 + i: the sampling key
                key = jnp.where(adapting, adc.keys[jnp.minimum(i, self.num_warmup - 1)], jax.random.fold_in(sk, t0 + i))
                p = jax.tree.map(lambda x, y: jnp.where(adapting, x, y), a.params(target, adc), p)
                new, info = s.build(target, p).step(key, st)
                stats = s.stats(new, info, p)
                adc = jax.lax.cond(adapting, lambda v: a.update(target, v, st, new, stats, row), lambda v: v, adc)
                return new, adc, stats

            return jax.vmap(one)(keys, states, params, ad)

        steps = jnp.where(adapting, self.num_warmup, n)
        # The kernel step is traced once, into a jaxpr replayed in the loop body: tracing NUTS costs ~0.6 s,
        # and the buffers need its stats' shapes before the loop (jax.eval_shape would trace it a second time).
        step_jaxpr, out_shapes = jax.make_jaxpr(step_all, return_shape=True)(
            jnp.zeros((), steps.dtype), states, params, adapting_state)
        out_tree = jax.tree.structure(out_shapes)
        buffers = jax.tree.map(lambda x: jnp.zeros((size, *x.shape), x.dtype), out_shapes[2])
        pos_buf = jnp.zeros((size, *states.position.shape), states.position.dtype)

        def body(i, carry):
            states, ad, n_div, bufs = carry
            flat = jax.core.eval_jaxpr(step_jaxpr.jaxpr, step_jaxpr.consts, *jax.tree.leaves((i, states, params, ad)))
            states, ad, stats = jax.tree.unflatten(out_tree, flat)
            # no `cond` on `adapting` here: with the bar's callback inside one the program rounded differently
            # from the one without a bar. Warmup steps write into the last row (discarded) and show nothing.
            if bar.enabled:  # the running divergence count only feeds the progress bar
                n_div = n_div + jnp.sum(stats.get("diverging", False)).astype(n_div.dtype)
                bar.update(jnp.where(adapting, -1, t0 + i), stats.get("acceptance_rate"), n_div,
                           jnp.where(adapting, 1 << 30, bar_every), jnp.where(adapting, -2, bar_last))
            bufs = jax.tree.map(lambda b, y: jax.lax.dynamic_update_index_in_dim(b, y, jnp.minimum(i, size - 1), 0),
                                bufs, (states.position, stats))
            return states, ad, n_div, bufs

        states, ad, _, ys = jax.lax.fori_loop(0, steps, body, (states, adapting_state, jnp.zeros((), jnp.int32),
                                                                (pos_buf, buffers)))
        final = jax.vmap(lambda adc: a.final(target, adc))(ad)
        params = jax.tree.map(lambda x, y: jnp.where(adapting, x, y), final, params)
        return states, params, ad, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), ys)  # chain axis first

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
            n_div, n_div_nf, e_first, e_prev, e_sq = 0, 0, None, None, 0.0
            for j in range(thin):
                states, stats = self._step_all(keys, states, params, draw * thin + j)
                n_grad = n_grad + stats["n_grad"]
                div = div | stats.get("diverging", False)
                acc = acc + stats.get("acceptance_rate", 0.0)
                if "nonfinite" in stats:
                    rev = rev + jnp.asarray(stats["nonfinite"], jnp.int32)
                if thin > 1 and "diverging" in stats:
                    d = jnp.asarray(stats["diverging"], bool)
                    n_div = n_div + d.astype(jnp.int32)
                    nf = jnp.zeros_like(d)
                    for k in NONFINITE_FLAGS:
                        if k in stats:
                            nf = nf | jnp.asarray(stats[k], bool)
                    n_div_nf = n_div_nf + (d & nf).astype(jnp.int32)
                if thin > 1 and "energy" in stats:
                    e = stats["energy"]
                    e_first = e if e_first is None else e_first
                    e_sq = e_sq if e_prev is None else e_sq + jnp.square(e - e_prev)
                    e_prev = e
            # a kept draw reports the thinned-away steps too: gradients summed, any divergence, mean acceptance,
            # reverted non-finite steps (`nonfinite`: any since the last kept draw; `n_reverted`: how many); with
            # thinning also how many steps diverged (`n_divergent`, `n_divergent_nonfinite`) and the energies
            # E-BFMI needs from every step (`energy_first` of the window, `energy_diff_sq`: the sum of its
            # squared step-to-step changes), so divergences and E-BFMI are those of all steps, not of kept ones
            out = {**stats, "n_grad": n_grad}
            if "diverging" in stats:
                out["diverging"] = div
                if thin > 1:
                    out["n_divergent"], out["n_divergent_nonfinite"] = n_div, n_div_nf
                    if "diverging_nonfinite" in stats:  # any divergence in the window that met a NaN/inf
                        out["diverging_nonfinite"] = n_div_nf > 0
            if thin > 1 and "energy" in stats:
                out["energy_first"], out["energy_diff_sq"] = e_first, e_sq
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
                n_div = n_div + jnp.sum(ys[1].get("n_divergent", ys[1].get("diverging", False))).astype(n_div.dtype)
                bar.update(draw, ys[1].get("acceptance_rate"), n_div, bar_every, bar_last)
            buffers = jax.tree.map(lambda b, y: jax.lax.dynamic_update_index_in_dim(b, y, i, 0), buffers, ys)
            return states, n_div, buffers

        states, _, ys = jax.lax.fori_loop(0, n, body, (states, jnp.zeros((), jnp.int32), buffers))
        return states, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), ys)  # chain axis first
