# The two commands a new user needs are `make lab` and `make test` (see README.md).
CARGO ?= cargo
NODES ?= 3

.PHONY: lab test setup build bench clean

## Run the lab console: 3 brokers on a private ZooKeeper.
lab: setup build
	./target/release/simplekv-lab --nodes $(NODES)

## Run the whole test suite (real ZooKeeper, real gRPC on loopback).
test: setup
	$(CARGO) test --locked

## Install ZooKeeper, tmux and redis-tools from the system's packages when missing.
setup:
	@./scripts/setup.sh

build:
	$(CARGO) build --release --locked

## Criterion benchmarks of the storage engine.
bench: setup
	$(CARGO) bench --locked

clean:
	$(CARGO) clean
