# The two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := shared $(wildcard services/*) web $(wildcard deploy/allinone deploy/gateway deploy/analytics)
PYPROJECTS := $(foreach p,$(PACKAGES),$(p)/pyproject.toml)

.PHONY: settings-table run test install install-test unit integration e2e bench compose-config asyncapi lock clean ferretdb database \
	screenshots

# FerretDB (MongoDB wire protocol on SQLite) is the local database engine: built once from its Go module
# at the version pinned in tools/ferretdb/go.mod, into a git-ignored tool folder. `make ferretdb` fails
# without Go; `database` (used by run and test) only warns, and run/test then say what they fall back to.
FERRETDB := .tools/bin/ferretdb
GO ?= go

$(VENV)/.base: requirements/base.lock $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/base.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation $(foreach p,$(PACKAGES),-e $(p))
	touch $@

$(VENV)/.test: $(VENV)/.base requirements/test.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/test.lock
	touch $@

install: $(VENV)/.base
install-test: $(VENV)/.test

$(FERRETDB): tools/ferretdb/go.mod tools/ferretdb/go.sum $(wildcard tools/ferretdb/*.go)
	cd tools/ferretdb && GOTOOLCHAIN=local GOFLAGS=-mod=readonly GOBIN=$(CURDIR)/.tools/bin $(GO) install .
	@$@ --version

ferretdb: $(FERRETDB)

database:
	@if command -v $(GO) >/dev/null 2>&1; then $(MAKE) --no-print-directory $(FERRETDB); \
	else echo "make: Go is not installed, so FerretDB cannot be built: falling back to the in-process engine (data lost at exit; CI refuses this)" >&2; fi

## Serve the whole system in one process: FerretDB on ./var (unless MONGODB_URL), in-memory bus (unless AMQP_URL).
run: install database
	if [ -n "$$AMQP_URL" ]; then $(BIN)/python -m clinishare_shared.topology; fi
	$(BIN)/python -m clinishare_allinone

## Every test: unit, integration (real RabbitMQ), e2e (services as separate processes).
test: install-test database
	$(BIN)/python -m pytest

## Markers follow what a test uses (clinishare_shared.pytest_markers): unit (no I/O, enforced),
## database (MongoDB), integration (the real RabbitMQ), system, e2e (tests/e2e).
unit: install-test database
	$(BIN)/python -m pytest -m unit

integration: install-test database
	$(BIN)/python -m pytest -m integration

e2e: install-test database
	$(BIN)/python -m pytest tests/e2e

## Performance targets, each as a ratio to a baseline measured in the same run (not part of `make test`).
## The engine is MONGODB_URL's, else the in-process one; BENCH_ARGS="--quick" for a smoke run.
bench: install-test database
	$(BIN)/python -m bench $(or $(BENCH_ARGS),--engine both)

## Regenerate the console screenshots the README embeds (Playwright on Debian's Chromium).
screenshots: install-test database
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/python -m pytest web/tests/browser/test_pages.py -q -k "practitioner or patient"
	mkdir -p docs/screenshots
	cp artifacts/screenshots/chart-sharing-options-refused-desktop.png docs/screenshots/chart-sharing-options.png
	cp artifacts/screenshots/portal-fill-a-form-phone.png docs/screenshots/portal-form-phone.png

compose-config:
	docker-compose -f docker-compose.yml config --quiet

settings-table: install
	$(BIN)/python -m clinishare_allinone.settings_table --write README.md

asyncapi: install
	$(BIN)/python -m clinishare_shared.asyncapi > docs/asyncapi.json

lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 requirements/service.in -o requirements/service.lock
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 requirements/base.in -o requirements/base.lock
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 requirements/test.in -o requirements/test.lock

clean:
	rm -rf $(VENV) .tools
