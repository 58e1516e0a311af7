# The two commands a new user needs are `make lab` and `make test` (see README.md).
CARGO ?= cargo
NODES ?= 3

.PHONY: lab test setup build bench fuzz clean

## Run the lab console: 3 brokers on a private ZooKeeper.
lab: setup build
	./target/release/simplekv-lab --nodes $(NODES)

## Run the whole test suite (real ZooKeeper, real gRPC on loopback).
test: setup
	$(CARGO) test --locked --features failpoints

## Install ZooKeeper, tmux and redis-tools from the system's packages when missing.
setup:
	@./scripts/setup.sh

build:
	$(CARGO) build --release --locked

## Criterion benchmarks of the storage engine.
bench: setup
	$(CARGO) bench --locked

## Opt-in: run each fuzz target for FUZZ_SECONDS (default 60) with cargo fuzz (libFuzzer),
## starting from the saved corpus in fuzz/corpus; new inputs go to target/fuzz-corpus, crashes to
## fuzz/artifacts. Installs cargo-fuzz when missing; RUSTC_BOOTSTRAP lets the stable toolchain
## take the sanitizer flags.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= record hint command scenario resp
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/fuzz-corpus/$$t; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t target/fuzz-corpus/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 > target/fuzz-$$t.log 2>&1 \
	    || { tail -40 target/fuzz-$$t.log; exit 1; }; \
	  grep -E "^Done|number_of_executed_units" target/fuzz-$$t.log; \
	done

clean:
	$(CARGO) clean
