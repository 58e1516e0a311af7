//! The longer modes of the binary, each with its flags: `soak` and `bench`.

pub mod bench;
pub mod soak;
