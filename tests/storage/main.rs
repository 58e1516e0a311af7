//! Storage engine tests through its public API: model checks, crash recovery, merge, truncation,
//! replication bytes, durability and limits.

mod fuzz_corpus;
mod model;
mod power_loss;
mod recovery;
mod replication;
mod support;
