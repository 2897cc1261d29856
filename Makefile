# samplax: `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# First Python >= 3.12 found: explicit PYTHON, then python3.13/3.12 on PATH, then pyenv installs.
PYTHON ?= $(shell for c in python3.13 python3.12 python3 \
	$$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null) \
	$$(command -v pyenv >/dev/null 2>&1 && ls -d $$(pyenv root)/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	  if $$c -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then echo $$c; break; fi; done)
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: demo test test-slow venv clean bench browser docs

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "error: samplax needs Python >= 3.12 and none was found; install one (e.g. 'pyenv install 3.12') or run 'make PYTHON=/path/to/python3.12'" >&2; exit 1; fi
	@echo "using $(PYTHON) ($$($(PYTHON) --version))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,docs]'  # docs: tests/test_docs.py builds the site
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/samplax demo --out runs/demo

# The HTML report's browser test needs chromium; install it when we may (root + apt), else say how.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the report's browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium not found, the report's browser test will be skipped (install it: apt-get install chromium)"; fi; }

# Tests use a compilation cache of their own, emptied first: a run neither reads programs another machine or
# jaxlib wrote nor depends on what an earlier run left (CI time is measured cold).
TEST_ENV := SAMPLAX_COMPILATION_CACHE=$(CURDIR)/.cache/jax-tests

test: venv browser
	rm -rf .cache/jax-tests
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

test-slow: venv browser
	SAMPLAX_SLOW=1 $(PY) -m pytest $(PYTEST_ARGS)

# The documentation site (mkdocs-material, API from docstrings, notebooks rendered unexecuted) -> site/
docs: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

bench: venv
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache site .cache
