//! `serve`: unseals the CA, starts the async runtime and runs the relay
//! (serve.rs) until SIGINT or SIGTERM.

use anyhow::{Context, Result};

use crate::keys::{OperatorSecret, load_ca};
use crate::registry::Home;
use crate::serve::{SHUTDOWN_FLUSH_WAIT, serve_async};

/// Runs the relay until SIGINT or SIGTERM.
pub fn serve(home: &Home, secret: &OperatorSecret, console: Option<&str>) -> Result<()> {
    let mut config = home.config()?;
    if let Some(addr) = console {
        config.console.get_or_insert_with(Default::default).listen = addr.to_owned();
    }
    if let Some(c) = &config.console {
        // A bad address is the operator's typo: exit 2 before anything starts.
        if let Err(e) = c.listen.parse::<std::net::SocketAddr>() {
            crate::registry::usage!(
                "console address {:?} is not an address like 127.0.0.1:8443: {e}",
                c.listen
            );
        }
    }
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
