# The two commands a new user runs: `make demo` and `make test`. Each installs what it needs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test lint install clean

# constraints.txt pins every package the venv installs (regenerate: .venv/bin/pip freeze --exclude-editable).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/api2snow demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint sql
	for script in scripts/*.sh; do sh -n "$$script" || exit 1; done

# Two workers, each taking whole test files (module-scoped stacks stay in one worker): about 5 minutes on
# 2 cores instead of 8.
test: lint
	$(BIN)/pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) .api2snow
