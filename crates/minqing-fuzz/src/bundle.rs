//! The enrolment bundle target: text parsed as a bundle, with and without the
//! laptop's checks; a bundle that parses must serialize and parse again to
//! the same value, and pass the checks again if it passed them once.

use minqing_net::Bundle;

/// Runs one input (bytes that are not UTF-8 are refused before parsing, as
/// reading a bundle file does).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let checked = Bundle::from_json(text);
    let Ok(bundle) = Bundle::parse_unchecked(text) else {
        assert!(
            checked.is_err(),
            "a bundle passed the checks but does not parse"
        );
        return;
    };
    let passes = bundle.check().is_ok();
    assert_eq!(
        passes,
        checked.is_ok(),
        "from_json disagrees with parse + check"
    );
    let json = serde_json::to_string(&bundle).expect("a parsed bundle serializes");
    let again = Bundle::parse_unchecked(&json).expect("a serialized bundle parses again");
    assert!(again == bundle, "bundle round trip changed it");
    if passes {
        assert!(
            Bundle::from_json(&json).is_ok(),
            "a bundle that passed the checks fails them after a round trip"
        );
    }
    // The copy a laptop keeps (secret removed) still parses.
    let kept = serde_json::to_string(&bundle.without_secret()).expect("serializes");
    assert!(
        Bundle::parse_unchecked(&kept).is_ok(),
        "the kept copy does not parse"
    );
}
