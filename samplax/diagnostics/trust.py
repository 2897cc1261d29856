"""The trust check every `sample()` ends with: the findings of `check`, raised as one RuntimeWarning.

As PyMC and CmdStan do, a run that fails its own diagnostics says so when it returns, not only when the user
asks: `attrs["trusted"]` is 1 or 0 and `attrs["trust_findings"]` holds the findings, one per line ("note: ..."
lines are information, not failures). `check(dt)` returns the same findings at any later time.
"""

from __future__ import annotations

import warnings


def problems(findings: list[str]) -> list[str]:
    """The findings that are failures (not "note: ..." information)."""
    return [f for f in findings if not f.startswith("note:")]


def verify(dt, *, stacklevel: int = 3, extra: list[str] | None = None, draws: bool = True,
           replaces: tuple[str, ...] = ()) -> list[str]:
    """Check a finished run, record the findings in its attrs and warn once when any is a failure.

    extra: findings the run itself made (e.g. a reference that does not cover the posterior), listed first.
    draws=False: the run kept no draws (a streamed `moments_only` run); only its counts are judged.
    replaces: the check's own findings that begin so are dropped: `extra` says it from all of the run (a streamed
    run's check reads every k-th draw; its writer counted the non-finite values of every draw).
    """
    from samplax.diagnostics.mixing import check, count_findings

    try:
        found = check(dt) if draws else count_findings(dt.attrs)
        found = [f for f in found if not f.startswith(tuple(replaces))]
        findings = list(extra or []) + [f for f in found if f not in (extra or [])]
    except Exception as err:  # a diagnostic that cannot run is itself a finding, never a silent pass
        findings = list(extra or []) + [f"the trust check could not run ({type(err).__name__}: {err})"]
    bad = problems(findings)
    record = {"trusted": int(not bad), "trust_findings": "\n".join(findings)}
    dt.attrs.update(record)
    if "posterior" in dt.children:
        dt["posterior"].attrs.update(record)
    if bad:
        a = dt.attrs
        what = f"{a.get('sampler', 'sampler')} on {a.get('target', 'model')!r}"
        lines = "\n".join(f"  - {f}" for f in bad)
        warnings.warn(f"{what}: the run failed its trust check ({len(bad)} finding(s)); do not use these draws as "
                      f"posterior draws until this is fixed:\n{lines}\n(recorded in attrs['trust_findings']; "
                      "samplax.diagnostics.check(dt) repeats them)", RuntimeWarning, stacklevel=stacklevel)
    return findings
