//! `init`: creates a relay home (CA, server certificate, sealed keys, config).

use std::net::SocketAddr;

use anyhow::Result;
use minqing_net::{DEFAULT_SERVER_NAME, RelayCa};

use crate::registry::{CONFIG_FORMAT, Config, Home, now_rfc3339, usage, write_json};

/// Creates the relay home: CA, server certificate, config.
pub fn init(
    home: &Home,
    name: &str,
    listen: &str,
    secret: &crate::keys::OperatorSecret,
) -> Result<()> {
    home.refuse_laptop_home()?;
    if home.config_path().exists() {
        usage!(
            "{} is already a relay home (relay {:?}); refusing to overwrite its CA — choose another --home",
            home.root().display(),
            home.config().map(|c| c.name).unwrap_or_default()
        );
    }
    let name = name.trim();
    if name.is_empty() {
        usage!("--name cannot be empty");
    }
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => usage!("--listen {listen:?} is not an address like 127.0.0.1:4433"),
    };
    let passphrase = secret.new_passphrase()?;
    home.create_dirs()?;
    let ca = RelayCa::create(name)?;
    let mut hosts = Vec::new();
    if !addr.ip().is_unspecified() {
        hosts.push(addr.ip().to_string());
    }
    let server = ca.issue_server(&hosts)?;
    crate::keys::write_new_keys(home, ca.key_pem(), &passphrase)?;
    minqing_net::write_private_file(&home.ca_cert(), ca.cert_pem().as_bytes())?;
    minqing_net::write_private_file(&home.server_key(), server.key_pem.as_bytes())?;
    minqing_net::write_private_file(&home.server_cert(), server.cert_pem.as_bytes())?;
    let actor: [u8; 16] = rand::random();
    let config = Config {
        format: CONFIG_FORMAT.into(),
        name: name.to_owned(),
        listen: addr.to_string(),
        server_name: DEFAULT_SERVER_NAME.into(),
        actor: actor.iter().map(|b| format!("{b:02x}")).collect(),
        created_at: now_rfc3339(),
        limits: crate::registry::Limits::default(),
        console: None,
    };
    // config.json last: its presence marks a complete home.
    write_json(&home.config_path(), &config)?;
    println!(
        "relay {name:?} initialised in {}; it will listen on {addr}",
        home.root().display()
    );
    if !addr.ip().is_loopback() {
        println!(
            "note: {addr} is not a loopback address: laptops on the network can reach this relay"
        );
    }
    Ok(())
}
