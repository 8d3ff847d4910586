//! Integration tests of minqing-model.
//!
//! One integration-test binary for the package (docs/testing.md, "Test layout"):
//! add new tests as modules here, never as new files directly under `tests/`.

mod id_card_independent;
mod schema;
mod village_doc;
