# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVER_BINARIES := mariadbd mariadb-install-db redis-server redis-cli redis-benchmark node npm
NODE_MODULES := tests/node/node_modules
ARGS ?=

.PHONY: run test lint typecheck pytest servers bench clean

$(BIN)/tickerd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/tickerd
	$(BIN)/tickerd $(ARGS)

test: $(BIN)/tickerd servers lint typecheck pytest

lint: $(BIN)/tickerd
	$(BIN)/ruff check tickerd tests bench
	$(BIN)/ruff format --check tickerd tests bench

typecheck: $(BIN)/tickerd
	$(BIN)/mypy

pytest: $(BIN)/tickerd servers $(NODE_MODULES)
	$(BIN)/pytest

# The suite starts its own mariadbd and redis-server, and runs node; make sure the binaries exist.
servers:
	@missing=""; for b in $(SERVER_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing mariadb-server redis-server redis-tools nodejs npm (missing:$$missing)"; \
	    apt-get update -q >/dev/null; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server redis-server redis-tools nodejs npm >/dev/null; \
	  else \
	    echo "missing:$$missing; install them with: sudo apt-get install mariadb-server redis-server redis-tools nodejs npm"; exit 1; \
	  fi; \
	fi
	@node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)' || \
	  { echo "the Node.js client tests need Node.js 20 or later (found $$(node --version))"; exit 1; }

# The Node.js clients of tests/test_node_clients.py, at the versions pinned in the lock file.
$(NODE_MODULES): tests/node/package-lock.json | servers
	npm ci --no-audit --no-fund --loglevel=error --prefix tests/node >/dev/null
	touch $@

bench: $(BIN)/tickerd
	$(BIN)/python -m bench.incr
	$(BIN)/python -m bench.mysql

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(NODE_MODULES)
