//! The definitions and ids of the tests: fixtures from
//! `tests/fixtures/sagas/`, the demo saga as shipped, variants with
//! another fuse, catalogs, and fixed saga ids.

use std::path::Path;

use jetsaga::definition::Catalog;
use jetsaga::saga::SagaId;

/// The text of `tests/fixtures/sagas/<name>.toml`.
pub fn fixture(name: &str) -> String {
    read(&Path::new("tests/fixtures/sagas").join(format!("{name}.toml")))
}

/// The demo saga, `sagas/trip_booking.toml`, as shipped.
pub fn trip_booking() -> String {
    read(Path::new("sagas/trip_booking.toml"))
}

fn read(relative: &Path) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with its first `timeout = "…"` (the `[defaults]` one in every
/// fixture) set to `timeout`: a variant that differs only in its fuse.
pub fn with_timeout(text: &str, timeout: &str) -> String {
    let line = text.lines().find(|l| l.starts_with("timeout = \"")).unwrap_or_else(|| panic!("no default timeout in\n{text}"));
    let old = line.split('"').nth(1).expect("a quoted timeout");
    text.replacen(line, &line.replacen(old, timeout, 1), 1)
}

/// A catalog of definition texts (each must be valid).
pub fn catalog(sources: &[String]) -> Catalog {
    let files = sources.iter().enumerate().map(|(i, text)| (format!("definition{i}.toml"), text.clone()));
    Catalog::from_sources(files).unwrap_or_else(|e| panic!("invalid definition: {e:?}"))
}

/// A fixed saga id per `n`: `0190a5c4-0000-7000-8000-<n in hex>`.
pub fn saga_id(n: u128) -> SagaId {
    SagaId::from_u128(0x0190_a5c4_0000_7000_8000_0000_0000_0000 | n)
}
