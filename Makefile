# SML: two commands on a fresh clone.
#   make quick   set up .venv, then run the pipeline with the `cpu` preset (a DVC experiment)
#   make test    set up .venv, then run the test suite
# and for every day (or activate .venv and type the commands in the README):
#   make show    the experiments so far, one line each (python -m stages.show)
#   make sample PROMPT="ROMEO:"   stream text from the trained model
#   make grade [PART=attention]   grade your own parts in mine/ against the reference (LEARN.md)
#   make chat    talk to the fine-tuned model (after make quick or dvc repro)
# .venv is (re)built only when pyproject.toml changed since the last install.
# Windows without make: see README, "Windows".

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Stage commands in dvc.yaml say `python`: make it the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: quick test show sample chat grade bench lint venv clean

quick: $(STAMP)
	$(BIN)/python -m stages.experiment cpu

test: $(STAMP)
	$(BIN)/python -m pytest

show: $(STAMP)
	$(BIN)/python -m stages.show

PROMPT ?= ROMEO:
sample: $(STAMP)
	$(BIN)/python -m stages.sample --prompt "$(PROMPT)"

chat: $(STAMP)
	$(BIN)/python -m stages.chat

PART ?=
grade: $(STAMP)
	$(BIN)/python -m sml.learn $(PART)

bench: $(STAMP)
	$(BIN)/python bench/tokenizer.py

lint: $(STAMP)
	$(BIN)/ruff check .

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "SML needs Python >= 3.11, found " + sys.version.split()[0] + ": run make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing SML's dependencies into $(VENV) (the first time takes a few minutes: torch is large)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)
	@echo "$(VENV) is ready; to type commands yourself: source $(BIN)/activate"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
