//! SimpleKV lab: a replicated Bitcask key-value store with Kafka-style replication, built to be
//! watched. See DESIGN.md for the contract each module keeps.

pub mod storage;
