//! The JSON files of the library's `tests/data/`, where Monite's documented answers and
//! OpenAPI excerpts are kept.

/// The JSON file `tests/data/<path>` of the library's checkout.
#[must_use]
pub fn fixture_at(path: &str) -> serde_json::Value {
    let file = format!("{}/../tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap()
}
