//! Every input of the committed fuzz corpus (`fuzz/corpus/<target>/`) and
//! every crash reproducer (`fuzz/artifacts-found/<target>/`) goes through
//! its target's properties, so a change that breaks a decoder's property
//! on a known input fails `cargo test`, without libFuzzer.

use std::path::{Path, PathBuf};

type Run = fn(&[u8]);

const TARGETS: [(&str, Run); 15] = [
    ("address", pm_fuzzing::address::run),
    ("bodies", pm_fuzzing::bodies::run),
    ("content", pm_fuzzing::content::run),
    ("envelope_json", pm_fuzzing::envelope_json::run),
    ("graphql_args", pm_fuzzing::graphql_args::run),
    ("graphql_request", pm_fuzzing::graphql_request::run),
    ("hash", pm_fuzzing::hash::run),
    ("pem", pm_fuzzing::pem::run),
    ("queue_payload", pm_fuzzing::queue_payload::run),
    ("reader_rpc", pm_fuzzing::reader_rpc::run),
    ("receipt", pm_fuzzing::receipt::run),
    ("sealed", pm_fuzzing::sealed::run),
    ("signed_timestamp", pm_fuzzing::signed_timestamp::run),
    ("strict_msgpack", pm_fuzzing::strict_msgpack::run),
    ("timestamped_signature", pm_fuzzing::timestamped_signature::run),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_seed_corpus_and_every_fuzz_target_is_replayed_here() {
    let declared: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in &declared {
        assert!(TARGETS.iter().any(|(t, _)| t == name), "fuzz target {name} is not replayed by this test");
    }
    for (name, _) in TARGETS {
        assert!(declared.iter().any(|d| d == name), "{name} is replayed here but is no fuzz target");
        assert!(!inputs(&fuzz_dir().join("corpus").join(name)).is_empty(), "fuzz/corpus/{name}/ is empty");
    }
}

#[test]
fn the_committed_corpus_and_crash_reproducers_keep_every_property() {
    let mut replayed = 0;
    for (name, run) in TARGETS {
        for dir in ["corpus", "artifacts-found"] {
            for input in inputs(&fuzz_dir().join(dir).join(name)) {
                let data = std::fs::read(&input).unwrap();
                if std::panic::catch_unwind(|| run(&data)).is_err() {
                    panic!("{name}: a property fails on {}", input.display());
                }
                replayed += 1;
            }
        }
    }
    assert!(replayed >= TARGETS.len(), "only {replayed} inputs replayed");
}
