# The two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := shared $(wildcard services/*) $(wildcard deploy/allinone deploy/gateway deploy/analytics)
PYPROJECTS := $(foreach p,$(PACKAGES),$(p)/pyproject.toml)

.PHONY: run test install install-test unit integration e2e bench compose-config asyncapi lock clean

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

## Serve the whole system in one process (in-memory bus and in-process MongoDB unless AMQP_URL / MONGODB_URL).
run: install
	if [ -n "$$AMQP_URL" ]; then $(BIN)/python -m clinishare_shared.topology; fi
	$(BIN)/python -m clinishare_allinone

## Every test: unit, integration (real RabbitMQ), e2e (services as separate processes).
test: install-test
	$(BIN)/python -m pytest

unit: install-test
	$(BIN)/python -m pytest -m "not broker and not e2e"

e2e: install-test
	$(BIN)/python -m pytest tests/e2e

## Performance targets, each as a ratio to a baseline measured in the same run (not part of `make test`).
## The engine is MONGODB_URL's, else the in-process one; BENCH_ARGS="--quick" for a smoke run.
bench: install-test
	$(BIN)/python -m bench $(BENCH_ARGS)

compose-config:
	docker-compose -f docker-compose.yml config --quiet

asyncapi: install
	$(BIN)/python -m clinishare_shared.asyncapi > docs/asyncapi.json

lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 requirements/service.in -o requirements/service.lock
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 requirements/base.in -o requirements/base.lock
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 requirements/test.in -o requirements/test.lock

clean:
	rm -rf $(VENV)
