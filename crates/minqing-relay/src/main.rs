//! The county relay binary.
fn main() {}
