# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := emulators tap-capillary target-adobe-aep orchestration
# Meltano lives in its own environment, as its docs recommend; it installs the plugins into .meltano/.
MELTANO_VENV := .venv-meltano
MELTANO := $(MELTANO_VENV)/bin/meltano

.PHONY: install test lint test-pythons demo bench clean dagster-ui

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt $(foreach p,$(PACKAGES),-e "./$(p)[test]")
	touch $@

$(MELTANO):
	$(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MELTANO_VENV)/bin/python -m pip install --quiet "meltano>=4.4.1,<4.5"

# Bytecode compiled once at install: Meltano's installer writes none, and with PYTHONDONTWRITEBYTECODE (set on
# some machines, CI among them) every plugin start would compile its dependencies again.
.meltano/.installed: $(MELTANO) meltano.yml $(foreach p,tap-capillary target-adobe-aep,$(p)/pyproject.toml)
	$(MELTANO) install
	for venv in .meltano/*/*/venv; do "$$venv/bin/python" -m compileall -q -j 0 "$$venv/lib" >/dev/null || exit 1; done
	$(MELTANO_VENV)/bin/python -m compileall -q tap-capillary/tap_capillary target-adobe-aep/target_adobe_aep
	touch $@

install: $(VENV)/.installed .meltano/.installed

# mypy with the SDK templates' settings (mypy.ini) on both plugins, run by the oldest supported Python (.venv).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy tap-capillary/tap_capillary target-adobe-aep/target_adobe_aep

# Each package's suite runs with its own pytest configuration, then the cross-package tests.
test: lint install
	$(foreach p,$(PACKAGES),$(BIN)/pytest $(p) &&) MELTANO_BIN=$(abspath $(MELTANO)) $(BIN)/pytest tests

# Both plugins' suites on the oldest and the newest Python the packages advertise (their classifiers), each in a
# .venv-py<version>/ of its own; the interpreters come from PATH or pyenv (README: Python versions).
ADVERTISED_PYTHONS := $(shell sed -n 's/^ *"Programming Language :: Python :: \(3\.[0-9]*\)",/\1/p' tap-capillary/pyproject.toml)
TEST_PYTHONS := $(firstword $(ADVERTISED_PYTHONS)) $(lastword $(ADVERTISED_PYTHONS))

.venv-py%/.installed: $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	PYENV_VERSION=$* python$* -m venv .venv-py$*
	.venv-py$*/bin/python -m pip install --quiet --upgrade pip
	.venv-py$*/bin/python -m pip install --quiet $(foreach p,$(PACKAGES),-e "./$(p)[test]")
	touch $@

test-pythons: $(foreach v,$(TEST_PYTHONS),.venv-py$(v)/.installed)
	$(foreach v,$(TEST_PYTHONS),$(foreach p,tap-capillary target-adobe-aep,.venv-py$(v)/bin/pytest $(p) &&)) true

# Dagster's UI (orchestration/README.md) in an environment of its own, without the plugins: the webserver's
# dependencies would overwrite the SDK's backoff module in .venv (orchestration/pyproject.toml).
DAGSTER_VENV := .venv-dagster

$(DAGSTER_VENV)/.installed: orchestration/pyproject.toml
	$(PYTHON) -m venv $(DAGSTER_VENV)
	$(DAGSTER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DAGSTER_VENV)/bin/python -m pip install --quiet -e "./orchestration[ui]"
	touch $@

dagster-ui: install $(DAGSTER_VENV)/.installed

demo: install
	$(BIN)/python scripts/demo.py --meltano $(MELTANO)

# Throughput, request and memory figures against the emulators (bench/README.md); BENCH_ARGS="--records 1000000".
bench: install
	$(BIN)/python bench/run.py --meltano $(MELTANO) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(MELTANO_VENV) $(DAGSTER_VENV) .venv-py* .meltano output
