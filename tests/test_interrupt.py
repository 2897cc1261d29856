"""Never lose a run: Ctrl-C stops within a chunk and returns the partial draws with a checkpoint to resume,
and a run killed with SIGKILL resumes from its last checkpoint to exactly the uninterrupted draws."""

import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplax
from samplax import Target

KW = dict(num_chains=2, num_warmup=50, num_samples=400, seed=5, progress=False)


def interrupting_target(after_evals: int):
    """A Gaussian whose log-density sends this process SIGINT once, at its `after_evals`-th evaluation."""
    count = {"n": 0}

    def tick(_):
        count["n"] += 1
        if count["n"] == after_evals:
            os.kill(os.getpid(), signal.SIGINT)

    def logdensity(x):
        jax.debug.callback(tick, x[0])
        return -0.5 * jnp.sum(x ** 2)

    return Target.from_logdensity(logdensity, 3, name="interrupting")


def test_ctrl_c_returns_partial_draws_and_resumes_exactly(tmp_path):
    # the same program throughout (a callback in the log-density changes XLA's rounding): never-firing twin
    full = samplax.sample(interrupting_target(10 ** 12), "mala", **KW)
    # warmup makes ~100 evaluations (2 chains x 50 steps, batched: one callback per vmapped call and chain);
    # interrupting a little later lands inside the sampling phase
    t = interrupting_target(after_evals=2 * (KW["num_warmup"] + 120))
    with pytest.warns(RuntimeWarning, match="interrupted after (\\d+) of 400 draws"):
        part = samplax.sample(t, "mala", **KW)
    assert part.attrs["partial"] == 1
    done = part.posterior.sizes["draw"]
    assert 0 < done < 400 and done == part.attrs["interrupted_at_draw"]
    np.testing.assert_array_equal(part.posterior["x"].values, full.posterior["x"].values[:, :done])
    ckpt = part.attrs["checkpoint_to_resume"]
    assert os.path.exists(ckpt)
    rest = samplax.sample(interrupting_target(10 ** 12), "mala", resume=ckpt, **KW)
    assert "partial" not in rest.attrs
    np.testing.assert_array_equal(rest.posterior["x"].values, full.posterior["x"].values)
    os.remove(ckpt)


WORKER = textwrap.dedent('''
    import sys, jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import samplax
    from samplax import Target
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x ** 2), 3, name="killed")
    ck = sys.argv[1]
    kw = dict(num_chains=2, num_warmup=50, num_samples=400, seed=5, progress=False, checkpoint=ck, checkpoint_every=20)
    if sys.argv[2] == "slow":
        import time
        from samplax import checkpoint as c
        save = c.save
        def slow_save(*a, **k):  # leave time to be killed between checkpoints
            save(*a, **k)
            print("saved", k["t_done"], flush=True)
            time.sleep(0.5)
        c.save = slow_save
    dt = samplax.sample(t, "mala", **kw)
    np.save(sys.argv[3], dt.posterior["x"].values)
''')


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    ck, out = tmp_path / "run.ckpt", tmp_path / "x.npy"
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(ck), "slow", str(out)], stdout=subprocess.PIPE,
                            text=True)
    saved = 0
    for line in proc.stdout:  # kill after the third checkpoint
        if line.startswith("saved"):
            saved = int(line.split()[1])
            if saved >= 60:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    assert ck.exists() and not (tmp_path / "run.ckpt.tmp").exists()
    resumed = subprocess.run([sys.executable, "-c", WORKER.replace("dt = samplax.sample(t, \"mala\", **kw)",
                                                                   "dt = samplax.sample(t, \"mala\", resume=ck, **kw)"),
                              str(ck), "fast", str(out)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    t = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x ** 2), 3, name="killed")
    full = samplax.sample(t, "mala", num_chains=2, num_warmup=50, num_samples=400, seed=5, progress=False)
    np.testing.assert_array_equal(np.load(out), full.posterior["x"].values)
