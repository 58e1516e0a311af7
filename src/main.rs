//! `simplekv-lab`: the command line. Picks a mode and turns errors into one readable line.

use clap::Parser;

/// SimpleKV lab: a replicated Bitcask key-value store you can watch.
#[derive(Parser, Debug)]
#[command(name = "simplekv-lab", version, about)]
struct Args {
    /// Number of brokers to run in this process.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    eprintln!(
        "simplekv-lab: the lab console for {} brokers is not built yet; the storage engine is \
         (see README.md, 'cargo bench --bench storage').",
        args.nodes
    );
    std::process::ExitCode::FAILURE
}
