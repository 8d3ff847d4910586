//! `minqing-shaper`: the link shaper as a process, for shell scripts and the Node baseline.
//!
//! Prints `listening ADDR` once ready, then obeys one command per line on stdin
//! (`stats`, `reset`, `outage on|off`, `delay MS`, `jitter MS`, `loss P`,
//! `seed N`, `quit`) and prints the final counters as one JSON line when it ends
//! (on `quit`, Ctrl-C or SIGTERM). See docs/testing.md.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Parser, ValueEnum};
use minqing_testkit::shaper::{
    LinkConfig, ShaperHandle, TcpOptions, TcpOutage, TcpShaper, UdpShaper, check_loopback,
};
use tokio::sync::mpsc;

/// A loopback proxy that adds one-way delay, jitter, loss and outages between a
/// client and a server on this machine.
#[derive(Debug, Parser)]
#[command(name = "minqing-shaper", version)]
#[command(group(ArgGroup::new("proto").required(true).args(["udp", "tcp"])))]
struct Args {
    /// Shape UDP datagrams (QUIC).
    #[arg(long)]
    udp: bool,
    /// Shape a TCP byte stream (WebSocket). Loss does not apply to TCP.
    #[arg(long)]
    tcp: bool,
    /// Where clients connect: a loopback address; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The server behind the shaper: a loopback address.
    #[arg(long)]
    upstream: SocketAddr,
    /// One-way delay added each way, in milliseconds (RTT = 2 × this).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Extra delay drawn uniformly from 0..=jitter per datagram or chunk, in milliseconds.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Probability (0..1) that a UDP datagram is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Seed for loss and jitter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Let jitter reorder UDP datagrams.
    #[arg(long)]
    reorder: bool,
    /// What an outage does to TCP connections.
    #[arg(long, value_enum, default_value_t = OutageMode::Stall)]
    tcp_outage: OutageMode,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutageMode {
    /// Hold the bytes until the outage ends.
    Stall,
    /// Close every connection.
    Close,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minqing-shaper: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run() -> Result<()> {
    let args = Args::parse();
    check_loopback(args.listen).context("--listen must be 127.0.0.1 or ::1")?;
    check_loopback(args.upstream).context("--upstream must be 127.0.0.1 or ::1")?;
    let config = LinkConfig {
        one_way_delay: Duration::from_millis(args.delay_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        loss: args.loss,
        seed: args.seed,
        reorder: args.reorder,
    };
    config.validate().context("bad link settings")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(args, config))
}

async fn serve(args: Args, config: LinkConfig) -> Result<()> {
    // Keep the shaper alive in this scope; its handle drives it.
    let (local, handle, _udp, _tcp) = if args.udp {
        let s = UdpShaper::start(args.listen, args.upstream, config)
            .await
            .context("cannot start the UDP shaper")?;
        (s.local_addr(), s.handle(), Some(s), None)
    } else {
        let options = TcpOptions {
            outage: match args.tcp_outage {
                OutageMode::Stall => TcpOutage::Stall,
                OutageMode::Close => TcpOutage::Close,
            },
            ..TcpOptions::default()
        };
        let s = TcpShaper::start_with(args.listen, args.upstream, config, options)
            .await
            .context("cannot start the TCP shaper")?;
        (s.local_addr(), s.handle(), None, Some(s))
    };
    say(&format!("listening {local}"));

    let (tx, mut commands) = mpsc::channel::<String>(64);
    // Blocking stdin reads live on their own thread; at end of input the shaper keeps
    // running (a background job's stdin is often /dev/null).
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin_open = true;
    let mut term = terminate_signal()?;
    loop {
        tokio::select! {
            line = commands.recv(), if stdin_open => match line {
                Some(line) => {
                    if line.trim() == "quit" {
                        break;
                    }
                    say(&command(&handle, &line));
                }
                None => stdin_open = false,
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    say(&stats_json(&handle));
    Ok(())
}

#[cfg(unix)]
fn terminate_signal() -> Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::terminate()).context("cannot listen for SIGTERM")
}

fn stats_json(handle: &ShaperHandle) -> String {
    serde_json::to_string(&handle.stats()).unwrap_or_else(|e| format!("error: {e}"))
}

/// Carries out one stdin command and returns the line to print.
fn command(handle: &ShaperHandle, line: &str) -> String {
    match apply(handle, line) {
        Ok(Some(out)) => out,
        Ok(None) => "ok".to_owned(),
        Err(e) => format!("error: {e:#}"),
    }
}

fn apply(handle: &ShaperHandle, line: &str) -> Result<Option<String>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut cfg = handle.config();
    match words.as_slice() {
        ["stats"] => return Ok(Some(stats_json(handle))),
        ["reset"] => handle.reset_stats(),
        ["outage", "on"] => handle.outage(true),
        ["outage", "off"] => handle.outage(false),
        ["delay", ms] => cfg.one_way_delay = Duration::from_millis(ms.parse().context("delay MS")?),
        ["jitter", ms] => cfg.jitter = Duration::from_millis(ms.parse().context("jitter MS")?),
        ["loss", p] => cfg.loss = p.parse().context("loss P (0..1)")?,
        ["seed", n] => cfg.seed = n.parse().context("seed N")?,
        [] => return Ok(Some(String::new())),
        _ => bail!(
            "unknown command {line:?}; try stats, reset, outage on|off, delay MS, jitter MS, loss P, seed N, quit"
        ),
    }
    if cfg != handle.config() {
        handle.set_config(cfg)?;
    }
    Ok(None)
}
