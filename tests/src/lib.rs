//! Support code for the end-to-end tests: run the built binaries in temporary homes.
