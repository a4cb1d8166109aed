# bsz_lr: every target creates/reuses the project virtualenv first; on a fresh machine
# `make test` and `make reproduce` are the whole set-up.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
RESULTS ?= results
FIGS    ?= figures
PROFILE ?= cpu
EXPERIMENTS := $(sort $(wildcard experiments/*.py))

.PHONY: install test smoke reproduce reproduce-full figures bench clean-venv

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# pytest exits 5 when it collects no tests: that is not a failure of the suite.
test: $(STAMP)
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

# Every experiment's smoke profile (those without one are skipped, saying so) into a throw-away
# store, then its figures.
smoke: $(STAMP)
	rm -rf .cache/smoke
	$(BIN)/python -m bsz_lr sweep $(EXPERIMENTS) --profile smoke --skip-missing --runs .cache/smoke/results --no-progress
	$(BIN)/python -m bsz_lr figures --runs .cache/smoke/results --out .cache/smoke/figures --profile smoke

# Every experiment (one after another; a failing one does not stop the others, but fails the target).
# An experiment without the profile (e.g. only cpu-long) is named and skipped.
reproduce: $(STAMP)
	$(BIN)/python -m bsz_lr sweep $(EXPERIMENTS) --profile $(PROFILE) --runs $(RESULTS) --skip-missing; \
	  rc=$$?; $(MAKE) figures && exit $$rc

reproduce-full:
	$(MAKE) reproduce PROFILE=cpu-long,cpu

figures: $(STAMP)
	$(BIN)/python -m bsz_lr figures --runs $(RESULTS) --out $(FIGS)

bench: $(STAMP)
	$(BIN)/python -m bsz_lr bench

clean-venv:
	rm -rf $(VENV)
