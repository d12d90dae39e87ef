# shoal — the two commands every machine needs (README.md):
#   make run    builds and runs the main job on an embedded default
#   make test   installs what is missing and runs everything CI runs

CARGO ?= cargo
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
SYSTEM_PACKAGES := cmake clang libclang-dev

.PHONY: run test deps fmt-check clippy unit sim-replay summary help

help:
	@echo "make run   - simulate a 10,000-node cluster losing half its nodes (readable report)"
	@echo "make test  - install missing system packages, then fmt, clippy and every test"

run:
	$(CARGO) run --release -p shoal-loadgen -- sim --scenario crash --nodes 10000 --fail-fraction 0.5 --seed 1

test: deps fmt-check clippy unit sim-replay summary

# System packages the build needs (boring-sys compiles BoringSSL with cmake and bindgen needs
# libclang). Installed only when missing, so a prepared machine does not touch apt.
deps:
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup)"; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Release mode: the simulation tests drive thousands of nodes. The output is kept so that
# `summary` can print one total line (cargo ends on per-crate doc-test lines of 0 tests).
unit:
	mkdir -p target
	$(CARGO) test --workspace --release --locked 2>&1 | tee target/test-output.txt

# The same seed must print the same report byte for byte (docs/SIMULATION.md).
sim-replay:
	$(CARGO) build --release --locked -p shoal-loadgen
	./target/release/shoal-loadgen sim --scenario crash --nodes 500 --seed 7 --quiet > target/replay-a.txt
	./target/release/shoal-loadgen sim --scenario crash --nodes 500 --seed 7 --quiet > target/replay-b.txt
	cmp target/replay-a.txt target/replay-b.txt
	@echo "sim-replay: identical output for the same seed"

summary:
	@awk '/^test result:/ { passed += $$4; failed += $$6 } END { printf "%d passed, %d failed\n", passed, failed }' target/test-output.txt
