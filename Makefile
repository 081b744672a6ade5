# The two commands: `make serve` starts the demo server, `make test` runs every test.
# Both create .venv on first use (Python >= 3.11) and install from requirements.lock; `make test`
# also installs the servers and browser the tests start (tests/system-deps.sh: apt-get, as root).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test lint bench lock clean typecheck-tree

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/flashsale serve $(ARGS)

test: $(STAMP) typecheck-tree
	bash tests/system-deps.sh
	$(BIN)/ruff check actors engine transport tests bench
	$(BIN)/ruff format --check actors engine transport tests bench
	$(BIN)/mypy
	$(BIN)/pytest

# The installed layout (engine/ is flashsale, actors/ and transport/ sit inside it) as links,
# for mypy, which cannot follow the editable install's import hook. Remade on every run: cheap.
typecheck-tree:
	rm -rf $(VENV)/typecheck && mkdir -p $(VENV)/typecheck/flashsale
	ln -s $(CURDIR)/engine/* $(CURDIR)/actors $(CURDIR)/transport $(VENV)/typecheck/flashsale/

bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

lock:
	$(BIN)/pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
