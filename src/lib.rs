//! SimpleKV lab: a replicated Bitcask key-value store with Kafka-style replication, built to be
//! watched. See DESIGN.md for the contract each module keeps.

pub mod bench;
pub mod broker;
pub mod cli;
pub mod client;
pub mod command;
pub mod config;
pub mod coord;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod lab;
pub mod net;
pub mod replica;
pub mod resp;
pub mod rpc;
pub mod storage;
#[doc(hidden)]
pub mod testkit;
pub mod tui;
