# Kaikukortti — `make run` starts the system; `make test` runs every test.
# The fast loop: `make unit` (no servers, under a minute), `make integration`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGES := -e shared -e dev -e services/cards -e services/venues -e services/omakaiku -e services/notifications -e services/web
SOURCES  := constraints.txt requirements-dev.txt shared/pyproject.toml dev/pyproject.toml $(wildcard services/*/pyproject.toml)

.PHONY: run test unit integration install clean-data help bench profile browser

help:
	@echo "make run   - start NATS, Postgres, every service and demo data; prints the URLs"
	@echo "make unit        - the tests that need no servers (domain, application, contracts, layers)"
	@echo "make integration - unit + the tests against real NATS and Postgres, no service processes"
	@echo "make test        - every test: + the running system end to end, faults, cluster, browser"

$(STAMP): $(SOURCES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt $(PACKAGES) -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/kaiku run

# Browser tests drive Debian's Chromium (Playwright cannot download browsers here).
# Installed when missing and we may (root with apt); otherwise those tests skip.
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "make: Chromium not installed; the browser tests will be skipped" >&2; }

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
# Its own temp root: pytest prunes other sessions' numbered temp dirs.
# The markers are applied by path in conftest.py (MARKERS_BY_PATH).
PYTEST = status=0; $(BIN)/python -m pytest --basetemp="$$(mktemp -d /tmp/kaiku-pytest-XXXXXX)" \
	$(1) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

test: install browser
	@$(call PYTEST,)

unit: install
	@$(call PYTEST,-m "not (integration or e2e)")

integration: install
	@$(call PYTEST,-m "not e2e")

clean-data:
	rm -rf .kaiku

# Benchmarks against real NATS and Postgres; each prints its same-run baseline.
bench: install
	$(BIN)/python bench/write_path.py
	$(BIN)/python bench/registration.py
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/notifications_fanout.py
	$(BIN)/python bench/cards_seed_history.py
	$(BIN)/python bench/cards_seed_history.py --scale 10 --no-breakdown
	$(BIN)/python bench/public_stats.py

# Where the CPU goes where a target is missed: py-spy profiles → bench/profiles/*.md
profile: install
	$(BIN)/python bench/pyspy_profile.py registration
	$(BIN)/python bench/pyspy_profile.py rebuild
	$(BIN)/python bench/pyspy_profile.py public-stats
