//! Test and benchmark support for minqing: a user-space link shaper, round-trip
//! helpers, a hostile peer ([`hostile`]) for the relay's lock-out tests, and a
//! power-cut file system ([`powercut`]) that keeps only what was fsynced.
//!
//! The machine has no `netem`, so the kernel cannot delay packets. [`shaper`]
//! puts a proxy on 127.0.0.1 between a device and the relay that adds one-way
//! delay, jitter, loss and outages on command, for UDP (QUIC) and for TCP (the
//! WebSocket baseline), and counts what crosses it. The same shaper serves the
//! tests and `cargo xtask bench`; the `minqing-shaper` binary exposes it to shell
//! scripts and to the Node baseline. See `docs/testing.md`.
//!
//! Everything here refuses addresses outside the loopback range: no test or
//! benchmark may send traffic anywhere but this machine.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod hostile;
pub mod powercut;
pub mod rtt;
pub mod shaper;
