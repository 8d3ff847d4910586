//! `serve`: the QUIC endpoint that syncs villages with enrolled laptops.

use anyhow::{Result, bail};

use crate::registry::Home;

/// Runs the relay until SIGINT or SIGTERM.
pub fn serve(home: &Home) -> Result<()> {
    home.config()?;
    bail!("serve is not built yet")
}
