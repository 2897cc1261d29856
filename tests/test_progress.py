"""The sampling progress bar: one count of draws over all chains, whatever the layout and chunking."""

import numpy as np
import pytest

import samplax
from samplax.progress import Progress


def _feed(bar, per_chain, chains_in_turn, chunk, every):
    """Replay the host callbacks a run makes: per chunk, each chain (in turn, or all at once) reports every
    `every`-th draw and the chunk's last one."""
    for t0 in range(0, per_chain, chunk):
        bar.begin_chunk(t0)
        last = min(t0 + chunk, per_chain) - 1
        for _ in range(chains_in_turn):
            for draw in range(t0, last + 1):
                if draw % every == 0 or draw == last:
                    bar._host(draw, 0.8, 0)


@pytest.mark.parametrize("passes, chunk, every", [(1, 100, 1), (4, 100, 1), (4, 30, 7), (3, 100, 9), (2, 7, 3)])
def test_bar_counts_every_draw_of_every_chain_once(passes, chunk, every):
    bar = Progress(True, total=100, label="x")
    bar.start(0, passes=passes)
    _feed(bar, 100, passes, chunk, every)
    assert bar._done == 100 * passes and bar._bar.n == bar._bar.total == 100 * passes
    bar.close()


def test_bar_is_created_at_the_first_draw_so_compilation_is_not_in_its_rate():
    bar = Progress(True, total=10, label="x")
    bar.start(0)
    assert bar._bar is None  # compilation happens here, before any draw
    bar.begin_chunk(0)
    bar._host(0, np.nan, 0)
    assert bar._bar is not None and bar._bar.n == 1
    bar.close()


def test_resumed_bar_starts_at_the_draws_already_made():
    bar = Progress(True, total=50, label="x")
    bar.start(20, passes=2)
    _feed_from = 20
    bar.begin_chunk(_feed_from)
    for chain in range(2):
        for draw in range(20, 50):
            bar._host(draw, 0.8, 0)
    assert bar._done == 100
    bar.close()


@pytest.mark.parametrize("chain_method", ["mapped", "vectorized", "sequential"])
def test_sampling_bar_reaches_all_draws_and_says_what_it_compiles(chain_method, capsys):
    t = samplax.models.get("gaussian", dim=2)
    samplax.sample(t, "mala", num_chains=2, num_warmup=20, num_samples=30, seed=0, progress=True,
                   chain_method=chain_method, step_size=0.5, mass_matrix="diagonal", chunk_size=12)
    err = capsys.readouterr().err
    total = 30 if chain_method == "vectorized" else 60
    assert f"{total}/{total}" in err, err[-500:]
    assert "compiling the chunk program" in err or "compiling the" in err
