//! The command language of DESIGN §3: one parser and one executor for the lab's shell, `cli` and
//! scenarios.

mod exec;
mod parse;

pub use exec::{LabControl, NoLab, Outcome, Reply, Session, WriteRecord};
pub use parse::{
    Check, Command, HELP, LoadSpec, MAX_KEY_BYTES, Target, WaitCondition, parse, parse_duration,
    parse_words, tokenize,
};
