# Two commands matter on a fresh machine: `make local` and `make test`.
# Every target sets up what it needs (Python env from uv.lock, the MLeap runtime the tests
# judge bundles with, from Maven Central, pinned npm tools) and is a no-op when that is already done.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.9.5
BOOTSTRAP := .cache/bootstrap
UV := $(BOOTSTRAP)/bin/uv
PY := .venv/bin/python
JARS := build/jars
MVN := mvn -q -B

.PHONY: help setup test test-large lint mutation iam-mutation real-tables local glue-local data bench deploy clean

help:
	@echo "make local       run the whole pipeline on this machine (AUTO_APPROVE=1, REJECT=1, DATA=path, SPEC=datasets/<name>.json, RUNS=N, SERVE=1, NO_IAM=1)"
	@echo "make test        every test (sets itself up)"
	@echo "make test-large  the Glue job on a ~1 GB synthetic file (about 20 min on 2 cores; not in make test)"
	@echo "make lint        cfn-lint, sam validate --lint, asl-validator, checkov"
	@echo "make mutation    mutation testing of the decision path (MODULES=functions/qa_test ...; not in make test)"
	@echo "make iam-mutation which IAM statements some local run needs -> docs/iam-mutation.md (about 3 min)"
	@echo "make real-tables tables from wheels drafted with --label only, one run each, against a baseline -> docs/real-tables.md"
	@echo "make glue-local  DATA=<csv> OUT=<dir>: the Glue job on local Spark"
	@echo "make data        download and verify car.data into .cache/data/"
	@echo "make bench       benchmarks -> bench/results.json"
	@echo "make deploy      sam build + sam deploy + upload the Glue job's zip and the dataset specs (datasets/*.json)"

$(UV):
	python3 -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python python3.11
	touch $@

# The judge of every bundle the Glue job writes (it writes them itself, in Python): MLeap runtime
# 0.20.0, what SparkML Serving 3.3 runs, plus our small CLI over its Java API. Tests only.
$(JARS)/runtime/.done: tests/jvm/pom.xml $(wildcard tests/jvm/src/main/java/*/*.java tests/jvm/src/main/java/*.java)
	rm -rf $(JARS)/runtime
	$(MVN) -f tests/jvm/pom.xml package dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(abspath $(JARS)/runtime)
	cp tests/jvm/target/*.jar $(JARS)/runtime/
	touch $@

node_modules/.done: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

# Debian's Chromium and ChromeDriver: a test renders the saved approval page in a real browser
# (tests/functions/test_approval_figures.py). Tests only, like the jars.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
/usr/bin/chromedriver:
	$(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver \
	  || { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver; }

setup: .venv/.synced $(JARS)/runtime/.done node_modules/.done /usr/bin/chromedriver

data: .venv/.synced
	$(PY) -m localmode data $(if $(DATA),--data $(DATA))

test: setup
	$(PY) -m pytest

# Issue 5's "very large file" case: ~1 GB (33.5M rows) drawn from the spec's
# values must go through the job on a 2 GB driver without running out of memory.
LARGE_ROWS ?= 33500000
test-large: setup
	$(PY) -c "import json, sys; from pathlib import Path; from bench.synthetic import write_synthetic_csv; \
	write_synthetic_csv(json.load(open('datasets/car.json')), $(LARGE_ROWS), Path('build/large/input.csv'))"
	rm -rf build/large/out
	/usr/bin/time -v $(PY) -m localmode glue --data build/large/input.csv --out build/large/out 2>&1 | tail -25
	test -f build/large/out/manifest.json

# Pinned tools only (scripts/lint.py): cfn-lint from .venv, aws-sam-cli and checkov run by uv in
# their own environments, asl-validator from node_modules. No AWS account needed.
lint: setup
	$(PY) scripts/lint.py

# mutmut over the decision-path modules ([tool.mutmut] in pyproject.toml), then the score per module and
# every survivor (scripts/mutation.py; docs/mutation.md). MODULES=functions/qa_test runs one module;
# MUTATION_ARGS=--report-only re-reads the last run; MUTATION_ARGS=--fail-under=95 fails below 95%;
# --write-docs records the modules run in docs/mutation.md; --fresh-stats re-traces every test (the
# stats are otherwise kept when only tests were added since the last run).
mutation: setup
	$(PY) scripts/mutation.py $(MODULES) $(MUTATION_ARGS)

# Every local path under the template's IAM, each Allow statement removed in turn (docs/iam.md#policy-mutation).
iam-mutation: setup
	$(PY) scripts/iam_mutation.py --write

# Tables from wheels, drafted with --label only and run once each: docs/real-tables.md.
real-tables: .venv/.synced
	$(PY) scripts/real_tables.py

# AUTO_APPROVE=1, REJECT=1, SERVE=1, NO_IAM=1 and LOCAL_FAULTS=<State>,rollback reach the runner through the
# environment (make exports command-line variables); `python -m localmode run --help` explains them.
# Local mode needs the Python environment only: the MLeap jars judge bundles in tests, npm's tools lint.
local: .venv/.synced
	$(PY) -m localmode run $(if $(DATA),--data $(DATA)) $(if $(SPEC),--spec $(SPEC)) $(if $(OUT),--out $(OUT)) $(if $(RUNS),--runs $(RUNS))

glue-local: .venv/.synced
	@test -n "$(DATA)" -a -n "$(OUT)" || { echo "usage: make glue-local DATA=<csv> OUT=<dir>"; exit 2; }
	$(PY) -m localmode glue --data $(DATA) --out $(OUT)

# BENCH_ARGS=--skip-tests / --quick / ... (`$(PY) -m bench --help`); DATA=path picks car.data.
bench: setup
	$(PY) -m bench $(if $(DATA),--data $(DATA)) $(BENCH_ARGS)

# sam build + sam deploy (--guided until samconfig.toml holds the parameters) + upload the Glue job's
# zip (deps/glue/preprocessing.zip: glue/preprocessing + dataset_spec) and every dataset spec
# (datasets/*.json) to the artifacts bucket. Needs python3.13 on PATH and AWS credentials. Tear down with:
# $(PY) scripts/deploy.py teardown
deploy: .venv/.synced
	$(PY) scripts/deploy.py deploy

clean:
	rm -rf .venv build .cache/bootstrap node_modules .pytest_cache mutants
