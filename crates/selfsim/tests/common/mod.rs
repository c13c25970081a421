//! Locating the shared reference data (shared/data/lrd beside the checkout).
use std::path::PathBuf;

/// The lrd data directory: $SELFSIM_LRD_DIR, else shared/data/lrd beside
/// the repository, else /work/shared/data/lrd. None (with a note) when
/// absent, except under CI where missing data is a failure.
pub fn lrd_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("SELFSIM_LRD_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/lrd")),
        Some(PathBuf::from("/work/shared/data/lrd")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.join("longmemo/NileMin_622-1284.txt").exists() {
            return Some(c);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "shared/data/lrd not found (set SELFSIM_LRD_DIR)"
    );
    eprintln!("skipping: shared/data/lrd not found (set SELFSIM_LRD_DIR)");
    None
}
