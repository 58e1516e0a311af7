//! `bench --flamegraph`: samples every thread's stack with a SIGPROF timer (no perf_event
//! needed) and writes an SVG flame graph when the run ends. Compiled in with `--features
//! profile`; without it the option explains how to get it.

use std::path::PathBuf;

/// A running sampler.
pub struct Sampler {
    path: PathBuf,
    #[cfg(feature = "profile")]
    guard: pprof::ProfilerGuard<'static>,
}

impl Sampler {
    /// Starts sampling; the graph goes to `path` at [`Sampler::finish`].
    #[cfg(feature = "profile")]
    pub fn start(path: PathBuf) -> Result<Sampler, String> {
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(499)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map_err(|e| format!("cannot start the profiler: {e}"))?;
        Ok(Sampler { path, guard })
    }

    /// Without the `profile` feature there is no sampler to start.
    #[cfg(not(feature = "profile"))]
    pub fn start(path: PathBuf) -> Result<Sampler, String> {
        let _ = Sampler { path };
        Err("--flamegraph needs a build with the profiler: cargo build --release --features profile".into())
    }

    /// Stops sampling and writes the flame graph, threads merged by their role (broker threads,
    /// fsync threads, the rest) so the graph reads as where the time goes, not which thread.
    #[cfg(feature = "profile")]
    pub fn finish(self) -> Result<(), String> {
        let report = self
            .guard
            .report()
            .frames_post_processor(|frames| {
                frames.thread_name = simplekv::bench::thread_group(&frames.thread_name)
                    .name()
                    .to_string();
            })
            .build()
            .map_err(|e| format!("cannot build the profile: {e}"))?;
        let file = std::fs::File::create(&self.path)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        report
            .flamegraph(file)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        let folded = self.path.with_extension("folded");
        std::fs::write(&folded, folded_stacks(&report))
            .map_err(|e| format!("cannot write {}: {e}", folded.display()))?;
        eprintln!(
            "flame graph written to {} (stacks, one per line, in {})",
            self.path.display(),
            folded.display()
        );
        Ok(())
    }

    /// Without the `profile` feature nothing was sampled.
    #[cfg(not(feature = "profile"))]
    pub fn finish(self) -> Result<(), String> {
        let _ = self.path;
        Ok(())
    }
}

/// The samples as folded stacks (`group;outer;...;inner COUNT`), the text form flame-graph tools
/// read, for summing where time goes without a browser.
#[cfg(feature = "profile")]
fn folded_stacks(report: &pprof::Report) -> String {
    let mut lines: Vec<String> = report
        .data
        .iter()
        .map(|(frames, count)| {
            let mut names = vec![frames.thread_name.clone()];
            for frame in frames.frames.iter().rev() {
                for symbol in frame.iter().rev() {
                    names.push(symbol.to_string());
                }
            }
            format!("{} {count}", names.join(";"))
        })
        .collect();
    lines.sort();
    lines.join("\n") + "\n"
}
