# The two commands: `make run` serves the API on SQLite with the built-in questionnaires loaded;
# `make test` runs every check CI runs. Both create .venv and install what they need.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run demo test lint typecheck unit postgres node-deps browser wrk bench image clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The server and the worker side by side, until the server stops (Ctrl-C or SIGTERM stops both).
SERVE_AND_WORK = $(BIN)/proms worker & worker=$$!; \
	$(BIN)/proms serve & server=$$!; \
	trap 'kill -TERM $$server $$worker 2>/dev/null' INT TERM; \
	wait $$server; status=$$?; \
	while kill -0 $$server 2>/dev/null; do wait $$server; status=$$?; done; \
	kill -TERM $$worker 2>/dev/null; wait $$worker; exit $$status

# Local development: no authentication, so it only listens on loopback (the service refuses otherwise).
# The worker (subscription notifications, bulk exports) runs beside the server and stops with it.
run: install
	$(BIN)/proms init
	export PROMS_AUTH=$${PROMS_AUTH:-none}; \
	$(SERVE_AND_WORK)

# The same service with synthetic demo people (README: Demo data), on a database of its own so that demo data never
# mixes with var/proms.sqlite3. Measures are due every 12 weeks here, so the people who stopped coming are overdue.
demo: export PROMS_DATABASE_URL = sqlite:///var/demo.sqlite3
demo: export PROMS_AUTH ?= none
demo: export PROMS_SCHEDULE ?= *=84
demo: install
	$(BIN)/proms init
	$(BIN)/proms demo load
	$(SERVE_AND_WORK)

# PostgreSQL is a test target too: start the machine's cluster if it is installed but down.
postgres:
	@if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
		echo "starting PostgreSQL"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
		for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi

# The browser tests drive Debian's Chromium (never a downloaded one); a clean CI machine gets it here.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

node-deps:
	@for dir in tests/node examples/javascript; do \
		if [ -f $$dir/package-lock.json ]; then \
			(cd $$dir && ([ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error)) || exit 1; \
		fi; \
	done

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest tests/unit -q

test: install postgres node-deps browser lint typecheck
	$(BIN)/proms questionnaires check
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Benchmarks (by hand; each prints a table for bench/README.md). wrk generates the HTTP load.
wrk:
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)

bench: install postgres node-deps wrk
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python -m bench

# The container image (docs/deploy.md), tagged with the package version and as latest. Needs Docker.
image:
	docker build -t recovery-proms:$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml) -t recovery-proms:latest .

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .hypothesis tests/node/node_modules examples/javascript/node_modules
