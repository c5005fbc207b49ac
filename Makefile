# flareflow: the two commands of the README, and a few more for the local stack.
#   make demo   install, bring up the local stack, run one monthly DAG run, print where to look
#   make test   install if needed, run the whole test suite (what CI runs)
#   make test-fast   the tests that need no NVFlare federation and no Airflow services
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-fast up down status lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml hospital/pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --all-extras --all-packages
	@touch $@

demo: install
	$(BIN)/flareflow demo

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not federation and not services"

up: install  ## the local stack with Airflow's UI (http://localhost:8080), scheduler and triggerer
	$(BIN)/flareflow up --airflow

down:
	$(BIN)/flareflow down

status:
	$(BIN)/flareflow status

lint: install
	$(BIN)/ruff check .

clean: down
	rm -rf .flareflow
