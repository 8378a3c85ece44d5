# cdp: `make install` puts cdp on the PATH; `make demo` and `make test` are the two
# commands a newcomer needs next.
# Builds share one cache: export CARGO_TARGET_DIR=$HOME/.cache/cdp/target (as .ci/run does).

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
# DuckDB: `prebuilt` (the default here) links the pinned, checksum-verified libduckdb
# that tools/libduckdb.sh fetches from the npm registry, instead of compiling DuckDB's
# C++ (about 20 minutes on two cores); `make DUCKDB=bundled ...` compiles it in, as
# `cargo install` does.
DUCKDB ?= prebuilt
ifeq ($(DUCKDB),prebuilt)
DUCKDB_LIB_DIR := $(shell tools/libduckdb.sh)
ifeq ($(DUCKDB_LIB_DIR),)
$(error tools/libduckdb.sh could not provide libduckdb (see above); run with DUCKDB=bundled to compile DuckDB instead)
endif
export DUCKDB_LIB_DIR
CARGO_FEATURES := --no-default-features
else
CARGO_FEATURES :=
endif
CDP := $(TARGET_DIR)/debug/cdp
PIPELINE := pipelines/customer360.toml
# Test peers (S3 and Snowflake emulators) live in their own venv, outside git.
PEERS_VENV := .venv/peers
PEERS_STAMP := $(PEERS_VENV)/.installed-$(shell cksum < tests/peers/requirements.txt | cut -d' ' -f1)

.PHONY: all build demo test lint fmt sample-data bench clean-demo help peers peers-up peers-down install browser tansu

all: build

help:
	@echo "make install      build the release binary and install it as $(PREFIX)/bin/cdp"
	@echo "make demo         build and run the sample pipeline end to end (./lake, ./warehouse.duckdb)"
	@echo "make test         run every test, with the S3 and Snowflake emulators up on 127.0.0.1"
	@echo "make peers-up     start the emulators; \`source .venv/peers-run/env\` then cargo test"
	@echo "make peers-down   stop them"
	@echo "make lint         rustfmt check and clippy"
	@echo "make sample-data  regenerate sample-data/ (cdp gen --persons 2000 --seed 42)"
	@echo "make bench        benchmarks, results in BENCHMARKS.md"
	@echo "make test-airflow load the example DAG with Airflow's DagBag and run its commands (.venv/airflow)"
	@echo "make clean-demo   remove ./lake and ./warehouse.duckdb"

build:
	$(CARGO) build --locked $(CARGO_FEATURES)

# The release binary on the PATH: $(PREFIX)/bin/cdp (~/.cargo/bin, which rustup puts on
# the PATH). `make install PREFIX=/usr/local` for /usr/local/bin.
PREFIX ?= $(HOME)/.cargo
install:
	$(CARGO) install --locked --path . --root $(PREFIX)

demo: build
	$(CDP) run $(PIPELINE) --truth sample-data/truth.csv
	@echo
	$(CDP) sql --pipeline $(PIPELINE) "SELECT person_id, first_name, last_name, email, phone, city, record_count FROM customer_360 ORDER BY record_count DESC, person_id LIMIT 5"
	@echo
	$(CDP) audience list $(PIPELINE)
	@echo
	$(CDP) report $(PIPELINE) --out cdp-report.html

test: $(PEERS_STAMP) browser tansu
	bash tests/peers/with-peers.sh $(CARGO) test --locked $(CARGO_FEATURES)
	$(MAKE) test-airflow

peers: $(PEERS_STAMP)

# The Kafka broker of the test peers (tansu, from crates.io), built once into
# ~/.cache/cdp/tansu by tools/tansu.sh: 8 minutes cold on two cores, then instant.
tansu:
	@bash tools/tansu.sh > /dev/null

# Headless Chromium for the report pages' browser test (tests/report.rs): Debian's
# package, installed when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  $(SUDO) apt-get install -y --no-install-recommends chromium \
	  || { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }; }

$(PEERS_STAMP): tests/peers/requirements.txt
	python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/peers/requirements.txt
	touch $@

peers-up: $(PEERS_STAMP)
	bash tests/peers/up.sh

peers-down:
	bash tests/peers/down.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets $(CARGO_FEATURES) -- -D warnings

fmt:
	$(CARGO) fmt

sample-data: build
	$(CDP) gen --persons 2000 --seed 42 --out sample-data

bench:
	bash bench/run.sh

clean-demo:
	rm -rf lake warehouse.duckdb warehouse.duckdb.wal exports cdp-report.html cdp-report.json

# Airflow: the example DAG in pipelines/airflow/ against the real binary. The venv is
# made once from pinned versions (PyPI); the test itself reaches no network.
AIRFLOW_VENV ?= .venv/airflow
.PHONY: test-airflow

$(AIRFLOW_VENV)/.installed: tests/airflow/requirements.txt
	python3 -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet -r tests/airflow/requirements.txt
	touch $@

test-airflow: build $(AIRFLOW_VENV)/.installed
	CDP_BIN=$(abspath $(CDP)) $(AIRFLOW_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/airflow

# The AppFlow / Data Exchange stand-in (with moto's S3) for tests/aws_sources.rs, in
# its own venv outside git; `make test` makes it and requires it (no silent skips).
STANDIN_VENV := .venv/standin
.PHONY: standin
standin: $(STANDIN_VENV)/.installed
$(STANDIN_VENV)/.installed: tests/standin/requirements.txt
	python3 -m venv $(STANDIN_VENV)
	$(STANDIN_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/standin/requirements.txt
	touch $@
test: standin
test: export CDP_REQUIRE_STANDIN = 1
