# Learners: `make lab` (set up, build the learner copies in learner/, open JupyterLab on them; a
# copy you edited is never overwritten). Instructors: `make lab-instructor` (notebooks/, solved).
# Maintainers: `make test`. All can be run again safely: setup only reinstalls when requirements
# change. `make bundle` downloads every pinned requirement for an install with no internet.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Two pytest-xdist workers, one file (a notebook, a test module) at a time on each, in the order
# conftest.py sets (the long notebooks first). `make test PYTEST_FLAGS=` runs in one process.
PYTEST_FLAGS ?= -n 2 --dist loadfile --no-loadscope-reorder
TEST_PATHS := tests/unit notebooks tests/browser

.PHONY: setup lab lab-instructor test test-full lint unit notebooks-test browser-test doctor student agenda \
	execute-notebooks bundle pack-model clean

setup: $(STAMP)

# --no-compile: Python compiles a module when it is first imported, instead of pip compiling
# every file of every package up front (most are never imported by the course).
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-compile --progress-bar off -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $(STAMP)

# `course_lib lab` builds/refreshes learner/ (edits kept) and passes --allow-root when run as root.
lab: setup
	$(BIN)/python -m course_lib doctor || true
	$(BIN)/python -m course_lib lab

lab-instructor: setup
	$(BIN)/python -m course_lib lab --instructor

# Lint first (a style error fails in seconds), then unit tests, every notebook with nbval, and
# the real-browser tests, in one pytest run under the quick profile (its last lines list the
# slowest tests). test-full: the same suite under the full profile, what learners run.
test: setup lint
	COURSE_PROFILE=quick $(BIN)/python -m pytest $(PYTEST_FLAGS) $(TEST_PATHS)

test-full: setup lint
	COURSE_PROFILE=full $(BIN)/python -m pytest $(PYTEST_FLAGS) $(TEST_PATHS)

# ruff, then the import layers (import-linter contracts in pyproject.toml)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

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

agenda: setup
	$(BIN)/python -m course_lib agenda

# Maintainers: re-execute every notebook top to bottom in a fresh kernel and store the outputs
# (records notebooks/timings.json). Instructors checking a laptop: python -m course_lib run --no-write
execute-notebooks: setup
	COURSE_PROFILE=full $(BIN)/python -m course_lib run

# Every pinned requirement as wheels in build/wheelhouse/ (this OS and the venv's Python; on Linux
# the CPU torch). BUNDLE_FLAGS: e.g. --platform win_amd64 --python-version 3.11, --torch-index URL.
BUNDLE_FLAGS ?=
bundle: setup
	$(BIN)/python -m course_lib bundle $(BUNDLE_FLAGS)

pack-model: setup
	$(BIN)/python -m course_lib pack-model

clean:
	rm -rf build .pytest_cache
