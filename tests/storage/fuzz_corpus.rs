//! Every saved fuzz input (`fuzz/corpus/<target>/`) through its target's body, so an input that
//! once found a bug, or a seed of each format, keeps being tried without a fuzzer (`make fuzz`
//! runs the fuzzers themselves).

#[test]
fn every_saved_fuzz_input_still_passes_its_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in simplekv::fuzzing::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no saved inputs for {name}");
        for input in inputs {
            let data = std::fs::read(&input).expect("read");
            // A panic names the input that caused it.
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} fails", input.display());
        }
    }
}
