# msmmt: `make demo` and `make test` work on a fresh clone (they create .venv first).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast bench lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/msmmt demo

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# The benchmarks that make their own data. The other benchmarks/bench_*.py analyse a dataset or
# finished runs given as arguments (their --help; the commands used are in benchmarks/results/).
BENCH_SELF := apex baselines composite_like executors face magnify model patch_weighting \
	predict preprocess spot synth train uncertainty

bench: $(STAMP)
	@for b in $(BENCH_SELF); do echo "== benchmarks/bench_$$b.py"; \
		$(PY) benchmarks/bench_$$b.py || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
