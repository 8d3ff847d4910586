//! `serve`: unseals the CA, starts the async runtime and runs the relay
//! (serve.rs) until SIGINT or SIGTERM.

use anyhow::{Context, Result};

use crate::keys::{OperatorSecret, load_ca};
use crate::registry::Home;
use crate::serve::{SHUTDOWN_FLUSH_WAIT, serve_async};

/// Runs the relay until SIGINT or SIGTERM.
pub fn serve(home: &Home, secret: &OperatorSecret) -> Result<()> {
    let config = home.config()?;
    // The CA signs laptops' certificates at first contact: its key is unsealed
    // with the operator passphrase before anything listens.
    let ca = load_ca(home, &config, secret)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve_async(home.clone(), config, ca));
    // A blocking task caught in a hung disk write must not keep the process
    // alive: everything acknowledged was flushed before it was acknowledged.
    runtime.shutdown_timeout(SHUTDOWN_FLUSH_WAIT);
    result
}
