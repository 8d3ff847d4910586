//! The CLI's side of the local API: finds a running service for its home and
//! has it carry the command out (docs/app.md, "Local API").
//!
//! The request is one HTTP/1.1 exchange over loopback TCP, written here with
//! the standard library: the CLI only ever talks to its own service, and a
//! blocking exchange costs no async runtime at start (every command pays it).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::discovery::{self, Discovery};
use crate::cli::{Cli, Command};

/// How long the CLI waits for the service to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the CLI waits for a command's answer (a sync pass, an import).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest answer taken from the service.
const MAX_REPLY: u64 = 256 << 20;

/// A command for the service: the CLI's arguments as typed.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunRequest {
    /// The arguments, the program name first.
    pub argv: Vec<String>,
    /// The CLI's working directory: relative paths in `argv` are resolved against it.
    pub cwd: String,
    /// `MINQING_TEST_RNG_SEED` of the CLI, for tests.
    pub rng_seed: Option<u64>,
}

/// What the command printed and its exit code.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunReply {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit code.
    pub code: u8,
}

/// The ping's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ping {
    /// The home the service owns (canonical).
    pub home: std::path::PathBuf,
    /// The service's process id.
    pub pid: u32,
}

/// One HTTP request to the service; the status and body of its answer.
fn exchange(
    d: &Discovery,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], d.port));
    let mut s = TcpStream::connect_timeout(&addr, PING_TIMEOUT)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {secret}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        port = d.port,
        secret = d.secret,
        len = body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()?;
    let mut raw = Vec::new();
    s.take(MAX_REPLY).read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the service's answer has no header end")?;
    let head = std::str::from_utf8(&raw[..split]).context("the service's answer head")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the service's answer has no status")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = raw[split + 4..].to_vec();
    let body = if chunked { dechunk(&body)? } else { body };
    Ok((status, body))
}

/// Decodes a chunked body.
fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk without its size line")?;
        let size_text = std::str::from_utf8(&b[..eol])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            bail!("a chunk is cut short");
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// The service running for home `dir`, if one answers: the discovery file
/// names a live process whose port answers the ping with this home. A stale
/// file (the process is gone, or the port answers otherwise) is ignored.
pub fn find(dir: &Path) -> Option<Discovery> {
    let d = discovery::read(dir)?;
    if !discovery::pid_alive(d.pid) {
        tracing::debug!("stale discovery file: pid {} is gone", d.pid);
        return None;
    }
    let (status, body) = exchange(&d, "GET", "/api/v1/ping", b"", PING_TIMEOUT).ok()?;
    let ping: Ping = serde_json::from_slice(&body).ok()?;
    (status == 200 && ping.home == discovery::canonical(dir) && ping.pid == d.pid).then_some(d)
}

/// Whether a command is carried out by a running service (all but `restore`,
/// whose target is a new home, and `lock`, which empties the key cache of
/// the CLI's own login session; `app` itself says it is running).
fn forwardable(c: &Command) -> bool {
    !matches!(c, Command::Restore(_) | Command::Lock)
}

/// Carries the command out through the service of its home if one runs:
/// prints what it printed and returns its exit code; `None` when there is no
/// service (the command then works on the store itself).
pub fn forward(cli: &Cli, args: &[OsString]) -> anyhow::Result<Option<ExitCode>> {
    if !forwardable(&cli.command) {
        return Ok(None);
    }
    let dir = crate::home::home_dir(cli.home.clone())?;
    let Some(d) = find(&dir) else {
        return Ok(None);
    };
    let argv = args
        .iter()
        .map(|a| {
            a.to_str().map(str::to_owned).with_context(|| {
                format!(
                    "argument {a:?} is not UTF-8 text; minqing app carries out only UTF-8 commands"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let req = RunRequest {
        argv,
        cwd: std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        rng_seed: std::env::var(crate::home::TEST_RNG_SEED_ENV)
            .ok()
            .and_then(|s| s.parse().ok()),
    };
    let (status, body) = exchange(
        &d,
        "POST",
        "/api/v1/run",
        &serde_json::to_vec(&req)?,
        RUN_TIMEOUT,
    )
    .with_context(|| format!("minqing app (pid {}) did not answer", d.pid))?;
    if status != 200 {
        bail!(
            "minqing app (pid {}) refused the command (HTTP {status}): {}",
            d.pid,
            String::from_utf8_lossy(&body)
        );
    }
    let reply: RunReply =
        serde_json::from_slice(&body).context("minqing app sent an answer that does not parse")?;
    print_raw(&reply.stdout, &reply.stderr);
    Ok(Some(ExitCode::from(reply.code)))
}

/// Writes a reply's output as it is (it was escaped where it was made).
fn print_raw(stdout: &str, stderr: &str) {
    let mut out = std::io::stdout().lock();
    match out.write_all(stdout.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        _ => {}
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(stderr.as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"9\r\nabc\r\n").is_err());
        assert!(dechunk(b"zz\r\n").is_err());
    }
}
