//! Running the test binary again as a child process, one test of it alone.

#![allow(dead_code, reason = "only the binaries with such a test use it")]

/// The name libtest gives the test `name` of the module at `module_path` (its
/// `module_path!()`): the path without the crate's name, so `inbox::crash::child_workers`
/// for `module_path!()` `inbox::inbox::crash`. For `--exact`.
pub(crate) fn test_name(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_, path)) => format!("{path}::{name}"),
        None => name.to_owned(),
    }
}
