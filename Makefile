# Two commands matter: `make demo` runs the service, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve worker test test-fast lint bench install clean fuzz

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pikcel-jobs demo $(ARGS)

serve: $(STAMP)
	$(BIN)/pikcel-jobs serve $(ARGS)

worker: $(STAMP)
	$(BIN)/pikcel-jobs worker $(ARGS)

test: $(STAMP)
	./scripts/test-services
	$(BIN)/python -m pytest $(ARGS)

# The long fuzz profile (schemathesis over /openapi.json, both databases); size per
# operation and mode: PIKCEL_FUZZ_EXAMPLES (default 200).
fuzz: $(STAMP)
	./scripts/test-services
	$(BIN)/python -m pytest -m slow -s tests/integration/hardening/test_fuzz_openapi.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
