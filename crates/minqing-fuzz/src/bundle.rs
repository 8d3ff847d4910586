//! The enrolment bundle target: text parsed as a bundle; a bundle that parses
//! must serialize and parse again to the same value.

use minqing_net::Bundle;

/// Runs one input (bytes that are not UTF-8 are refused before parsing, as
/// reading a bundle file does).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(bundle) = Bundle::from_json(text) else {
        return;
    };
    let json = serde_json::to_string(&bundle).expect("a parsed bundle serializes");
    let again = Bundle::from_json(&json).expect("a serialized bundle parses again");
    assert!(again == bundle, "bundle round trip changed it");
}
