# The course's two commands: `make lab` (set up, open the course) and `make test` (set up, run
# every test). Both can be run again safely: setup only reinstalls when requirements change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: setup lab test lint unit notebooks-test browser-test doctor student execute-notebooks clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $(STAMP)

lab: setup
	$(BIN)/python -m course_lib doctor || true
	$(BIN)/jupyter lab notebooks/00_welcome.ipynb

# Lint first (a style error fails in seconds), then unit tests, every notebook with nbval, and
# the real-browser tests, in one pytest run (its last lines list the slowest tests).
test: setup lint
	$(BIN)/python -m pytest $(PYTEST_FLAGS) tests/unit notebooks tests/browser

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: setup
	$(BIN)/python -m pytest $(PYTEST_FLAGS) tests/unit

notebooks-test: setup
	$(BIN)/python -m pytest $(PYTEST_FLAGS) notebooks

browser-test: setup
	$(BIN)/python -m pytest $(PYTEST_FLAGS) tests/browser

doctor: setup
	$(BIN)/python -m course_lib doctor

student: setup
	$(BIN)/python -m course_lib student

# Maintainers: re-execute every notebook top to bottom in a fresh kernel and store the outputs.
execute-notebooks: setup
	$(BIN)/python tools/execute_notebooks.py notebooks/*.ipynb

clean:
	rm -rf build .pytest_cache
