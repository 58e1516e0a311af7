//! The command language of DESIGN §3: one parser and one executor for the lab's shell, `cli` and
//! scenarios.

mod error;
mod exec;
mod faults;
mod parse;
mod rebalance;

pub use error::CommandError;
pub use exec::{LabControl, NoLab, OpKind, OpRecord, Outcome, Reply, Session};
pub use faults::{
    Fault, FaultKind, Member, NEMESIS_DEFAULT_EVERY, NemesisSpec, Sides, ZkTarget, fault_kinds,
};
pub use parse::{
    Check, Command, HELP, LoadSpec, MAX_KEY_BYTES, Target, WaitCondition, parse, parse_duration,
    parse_words, tokenize,
};
pub use rebalance::rebalance;
