# The two commands a new user runs: `make demo` and `make test`. Each installs what it needs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: help demo test lint install clean browser-test

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# constraints.txt pins every package the venv installs (regenerate: .venv/bin/pip freeze --exclude-editable).
$(STAMP): pyproject.toml constraints.txt
	@echo "installing api2snow and its pinned dependencies into $(VENV) (about a minute, once)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP) ## create .venv with every pinned dependency

demo: $(STAMP) ## start the local stack, run the task graph once, print a summary
	$(BIN)/api2snow demo

lint: $(STAMP) ## ruff, ruff format --check, sqlfluff, sh -n on scripts/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint sql
	for script in scripts/*.sh; do sh -n "$$script" || exit 1; done

# Two workers, each taking whole test files (module-scoped stacks stay in one worker): about 5 minutes on
# 2 cores instead of 8.
test: lint ## lint, then the whole test suite (what CI runs)
	$(BIN)/pytest -q -n 2 --dist loadfile

# The dashboard in a real headless browser: Debian's chromium and chromium-driver (apt-get, as root, once), then
# tests/browser. `make test` runs these too where chromium is installed; elsewhere the browser test skips.
browser-test: $(STAMP) ## install Debian's chromium if missing, then load the dashboard in it
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update && apt-get install -y chromium chromium-driver)
	$(BIN)/pytest -q tests/browser

clean: ## remove .venv and the local stack's state (.api2snow)
	rm -rf $(VENV) .api2snow
