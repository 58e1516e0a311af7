//! Integration tests against the real ZooKeeper (private server, one chroot per test) and real
//! gRPC on loopback.

mod batching;
mod bench;
mod cli_input;
mod console;
mod coord;
mod demos;
mod ensemble;
mod failover;
mod horizon;
mod isr;
mod lab;
mod node_mode;
mod procs;
mod rebalance;
mod replication;
mod resp;
mod smoke;
mod soak;
mod support;
mod trust;
mod wire;
