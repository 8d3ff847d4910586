//! Support code for the end-to-end tests: find the built binaries, run them in
//! temporary homes, and check their exit codes and output.
//!
//! The programs under test are this package's own binaries (`src/bin/e2e-*.rs`
//! call the same `minqing::run` and `minqing_relay::run` as the real ones), so
//! `cargo test` builds them before the tests run; tests never call cargo
//! themselves. `MINQING_E2E_BIN_DIR` points the tests at other builds ([`bin`]).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

/// Environment variables of the binaries that must not leak in from the
/// developer's shell.
const SCRUBBED_ENV: &[&str] = &[
    "MINQING_HOME",
    "MINQING_LOG",
    "MINQING_TEST_RNG_SEED",
    "MINQING_RELAY_HOME",
    "MINQING_TEST_STALL_FLUSH",
    "MINQING_KEY_CACHE_MINUTES",
];

/// The environment that turns the key cache back on for one command (the
/// cache tests; [`command`] turns it off for every other one).
pub const KEY_CACHE_ON: (&str, &str) = ("MINQING_KEY_CACHE", "on");

/// The passphrase every test home and relay is set up with (see
/// [`passphrase_file`]).
pub const TEST_PASSPHRASE: &str = "测试 passphrase 1234";

/// A file holding [`TEST_PASSPHRASE`] on its first line, made once per test
/// process; every command gets it through `MINQING_PASSPHRASE_FILE` and
/// `MINQING_RELAY_PASSPHRASE_FILE`.
pub fn passphrase_file() -> &'static Path {
    static FILE: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("minqing-e2e-pass-")
            .tempdir()
            .expect("a temporary directory can be created");
        let path = dir.path().join("passphrase");
        std::fs::write(&path, format!("{TEST_PASSPHRASE}\n"))
            .expect("the passphrase file can be written");
        (dir, path)
    });
    path
}

/// A file holding `text` as a passphrase, in a directory removed with the
/// returned guard.
pub fn passphrase_file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("minqing-e2e-pass-")
        .tempdir()
        .expect("a temporary directory can be created");
    let path = dir.path().join("passphrase");
    std::fs::write(&path, format!("{text}\n")).expect("the passphrase file can be written");
    (dir, path)
}

/// The programs under test and the file names this package builds them under
/// (`src/bin/e2e-*.rs`: the same `run` as the real binaries, named apart so as
/// not to collide with them in the target directory).
const OWN_BUILDS: &[(&str, &str)] = &[
    ("minqing", "e2e-minqing"),
    ("minqing-relay", "e2e-minqing-relay"),
];

/// Where cargo put this package's binaries: a test executable runs from
/// `<target>/<profile>/deps/`, the binaries are in `<target>/<profile>/`.
fn own_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable knows its path");
    let dir = exe
        .parent()
        .expect("an executable lives in a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// Path of a program the tests run: `minqing`, `minqing-relay` or a helper of
/// this package (`mq-hostile`).
///
/// By default these are this package's own builds, which `cargo test` makes
/// before it runs the tests (so plain `cargo test` on a fresh clone works).
/// `MINQING_E2E_BIN_DIR=DIR` takes `minqing` and `minqing-relay` from `DIR`
/// instead (to replay a test against an older build, e.g. the commit before a
/// fix). Panics with instructions if the file is missing.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::consts::EXE_SUFFIX;
    let own = OWN_BUILDS.iter().find(|(program, _)| *program == name);
    match (std::env::var_os("MINQING_E2E_BIN_DIR"), own) {
        (Some(dir), Some(_)) => {
            let path = PathBuf::from(dir).join(format!("{name}{exe}"));
            assert!(
                path.is_file(),
                "{} is missing (MINQING_E2E_BIN_DIR names the directory of the binaries to test)",
                path.display()
            );
            path
        }
        (_, own) => {
            let file = own.map_or(name, |(_, file)| file);
            let path = own_bin_dir().join(format!("{file}{exe}"));
            assert!(
                path.is_file(),
                "{} is missing: `cargo test -p minqing-e2e` builds it (by hand: `cargo build -p minqing-e2e --bins`)",
                path.display()
            );
            path
        }
    }
}

/// A command for a built binary with a clean environment (no `MINQING_*`
/// variables from the caller's shell).
pub fn command(name: &str) -> Command {
    let mut cmd = Command::new(bin(name));
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    // Every home and relay in the tests is encrypted with the test passphrase,
    // and with the test-only cheap key derivation (docs/security.md).
    cmd.env("MINQING_PASSPHRASE_FILE", passphrase_file());
    cmd.env("MINQING_RELAY_PASSPHRASE_FILE", passphrase_file());
    cmd.env("MINQING_TEST_WEAK_KDF", "1");
    // No key cache (docs/security.md): a key cached by one command would let
    // the next one skip the passphrase, and the tests of wrong passphrases,
    // prompts and the throttle would test the cache instead. The tests of
    // the cache itself turn it on again ([`KEY_CACHE_ON`]).
    cmd.env("MINQING_KEY_CACHE", "off");
    cmd.stdin(Stdio::null());
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (UTF-8).
    pub stdout: String,
    /// Standard error (UTF-8).
    pub stderr: String,
}

impl Run {
    /// Wraps a process's output.
    pub fn new(cmdline: String, out: Output) -> Run {
        Run {
            cmdline,
            status: out.status,
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    /// Asserts success; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert!(
            self.status.success(),
            "`{}` failed with {}:\nstdout: {}\nstderr: {}",
            self.cmdline,
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout.clone()
    }

    /// Asserts the command failed with exit `code`; returns stderr.
    #[track_caller]
    pub fn fails(&self, code: i32) -> String {
        assert_eq!(
            self.status.code(),
            Some(code),
            "`{}` should exit {code}:\nstdout: {}\nstderr: {}",
            self.cmdline,
            self.stdout,
            self.stderr
        );
        self.stderr.clone()
    }

    /// Asserts success; returns the last non-empty line of stdout (where a new
    /// record's id is printed).
    #[track_caller]
    pub fn id(&self) -> String {
        last_line(&self.ok())
    }

    /// Asserts success; parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        json(&self.ok())
    }
}

/// The last non-empty line of a text, trimmed.
pub fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Parses JSON, panicking with the text on failure.
#[track_caller]
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// A temporary home directory for one `minqing` device, removed at drop.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Default for Home {
    fn default() -> Self {
        Home::new()
    }
}

impl Home {
    /// A fresh, empty (not initialised) home.
    pub fn new() -> Home {
        Home {
            dir: tempfile::Builder::new()
                .prefix("minqing-e2e-")
                .tempdir()
                .expect("a temporary directory can be created"),
        }
    }

    /// The home's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `minqing --home <this> ARGS` command, not yet run.
    pub fn minqing_command(&self, args: &[&str]) -> Command {
        let mut cmd = command("minqing");
        cmd.arg("--home").arg(self.path()).args(args);
        cmd
    }

    /// Runs `minqing --home <this> ARGS` to completion.
    pub fn minqing(&self, args: &[&str]) -> Run {
        self.run(self.minqing_command(args), args)
    }

    /// Runs `minqing` with extra environment variables.
    pub fn minqing_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut cmd = self.minqing_command(args);
        cmd.envs(env.iter().copied());
        self.run(cmd, args)
    }

    /// Runs `minqing` with extra environment variables and no passphrase at
    /// all: no `MINQING_PASSPHRASE_FILE`, and no terminal to ask on (a new
    /// session without a controlling terminal, through util-linux `setsid`),
    /// so a command that needs the passphrase fails with the hint saying how
    /// to give it instead of asking.
    pub fn minqing_without_passphrase(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let inner = self.minqing_command(args);
        let mut cmd = Command::new("setsid");
        cmd.arg("--wait")
            .arg(inner.get_program())
            .args(inner.get_args());
        for (var, value) in inner.get_envs() {
            match value {
                Some(v) => cmd.env(var, v),
                None => cmd.env_remove(var),
            };
        }
        cmd.env_remove("MINQING_PASSPHRASE_FILE");
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null());
        let out = cmd
            .output()
            .expect("util-linux `setsid` runs minqing without a terminal");
        Run::new(format!("minqing {}", args.join(" ")), out)
    }

    fn run(&self, mut cmd: Command, args: &[&str]) -> Run {
        let out = cmd.output().expect("minqing can be started");
        Run::new(format!("minqing {}", args.join(" ")), out)
    }

    /// `minqing init --cadre NAME` on this home; returns the device id.
    pub fn init(&self, cadre: &str) -> String {
        self.minqing(&["init", "--cadre", cadre]).id()
    }
}

impl Home {
    /// `minqing init --bundle FILE` on this home; returns the device id.
    pub fn init_bundle(&self, bundle: &Path) -> String {
        let bundle = bundle.to_str().expect("temporary paths are UTF-8");
        self.minqing(&["init", "--bundle", bundle]).id()
    }

    /// Every regular file under this home, with its raw bytes.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        files_under(self.path())
    }
}

/// Every regular file under `dir` (recursively) with its raw bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => {
                    if let Ok(bytes) = std::fs::read(&p) {
                        out.push((p, bytes));
                    }
                }
                _ => {}
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A free UDP port on 127.0.0.1 (free when asked; another process could take it later).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a UDP socket can be bound on 127.0.0.1")
        .port()
}

/// Sends `signal` (e.g. "TERM", "KILL") to a process with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// A `minqing-relay` home in a temporary directory, listening on a free port of
/// 127.0.0.1, with its `serve` process (when started). The process is killed
/// when the value is dropped.
pub struct Relay {
    dir: tempfile::TempDir,
    /// The address `serve` listens on and bundles name.
    pub addr: String,
    server: Option<std::process::Child>,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Relay {
    /// `minqing-relay init --name NAME --listen 127.0.0.1:<free port>`.
    pub fn init(name: &str) -> Relay {
        Relay::init_at(name, &format!("127.0.0.1:{}", free_udp_port()))
    }

    /// `minqing-relay init --name NAME --listen ADDR`.
    pub fn init_at(name: &str, addr: &str) -> Relay {
        let dir = tempfile::Builder::new()
            .prefix("minqing-relay-e2e-")
            .tempdir()
            .expect("a temporary directory can be created");
        Relay::init_in(dir, name, addr)
    }

    /// `minqing-relay init` with the home inside `dir` (e.g. a small tmpfs
    /// mounted there), listening on `addr`.
    pub fn init_in(dir: tempfile::TempDir, name: &str, addr: &str) -> Relay {
        let relay = Relay {
            dir,
            addr: addr.to_owned(),
            server: None,
            log: Default::default(),
        };
        relay.run(&["init", "--name", name, "--listen", addr]).ok();
        relay
    }

    /// A copy of a stopped relay's home (same CA, registry and store), for
    /// repeating a scenario from the same starting point.
    pub fn copy_of(other: &Relay) -> Relay {
        assert!(other.server.is_none(), "copy a stopped relay only");
        let relay = Relay {
            dir: tempfile::Builder::new()
                .prefix("minqing-relay-e2e-")
                .tempdir()
                .expect("a temporary directory can be created"),
            addr: other.addr.clone(),
            server: None,
            log: Default::default(),
        };
        copy_dir(&other.home(), &relay.home());
        relay
    }

    /// The relay's temporary directory (its home and bundles live inside).
    pub fn dir_path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The relay's home directory.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("relay")
    }

    /// A `minqing-relay --home <home> ARGS` command, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = command("minqing-relay");
        cmd.arg("--home").arg(self.home()).args(args);
        cmd
    }

    /// Runs `minqing-relay --home <home> ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self
            .command(args)
            .output()
            .expect("minqing-relay can be started");
        Run::new(format!("minqing-relay {}", args.join(" ")), out)
    }

    /// `village add --id ID --name NAME`.
    pub fn village_add(&self, id: &str, name: &str) {
        self.run(&["village", "add", "--id", id, "--name", name])
            .ok();
    }

    /// `enroll --cadre CADRE --villages VILLAGES`; returns the device id and
    /// the bundle's path (inside the relay's temporary directory).
    pub fn enroll(&self, cadre: &str, villages: &str) -> (String, PathBuf) {
        let n = std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let path = self.dir.path().join(format!("device-{n}.bundle"));
        let id = self
            .run(&[
                "enroll",
                "--cadre",
                cadre,
                "--villages",
                villages,
                "--out",
                path.to_str().expect("temporary paths are UTF-8"),
            ])
            .id();
        (id, path)
    }

    /// `audit --json`, parsed.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        match self.run(&["audit", "--json"]).json() {
            serde_json::Value::Array(a) => a,
            other => panic!("audit --json is not an array: {other}"),
        }
    }

    /// Starts `serve` and waits (up to 30 s) until it prints that it listens.
    pub fn start(&mut self) {
        self.start_env(&[]);
    }

    /// Starts `serve` with extra environment variables (test hooks such as
    /// `MINQING_TEST_STALL_FLUSH`).
    pub fn start_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.server.is_none(), "the relay is already running");
        self.server = Some(self.spawn_serve(env));
    }

    fn spawn_serve(&self, env: &[(&str, &str)]) -> std::process::Child {
        let mut child = self
            .command(&["serve"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("minqing-relay serve can be started");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            // Keep draining so the relay never blocks on a full pipe.
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        if rx.recv_timeout(std::time::Duration::from_secs(30)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("minqing-relay serve did not listen:\n{}", self.log());
        }
        child
    }

    /// Runs `f` while `serve` runs: the relay's own process if started, else
    /// one started for `f` and stopped (SIGTERM) after it.
    pub fn while_serving<T>(&self, f: impl FnOnce() -> T) -> T {
        if self.is_running() {
            return f();
        }
        let mut child = self.spawn_serve(&[]);
        let out = f();
        send_signal(child.id(), "TERM");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return out;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        out
    }

    /// A laptop enrolled for `villages`: `enroll`, then `minqing init --bundle`
    /// on a new home (its first contact with the relay, which is started for
    /// it if it is not running). Returns the device id and the home.
    pub fn laptop(&self, cadre: &str, villages: &str) -> (String, Home) {
        let (id, bundle) = self.enroll(cadre, villages);
        let home = Home::new();
        let got = self.while_serving(|| home.init_bundle(&bundle));
        assert_eq!(
            got, id,
            "init --bundle sets the laptop up as the enrolled device"
        );
        (id, home)
    }

    /// The process id of the running `serve`, if started.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(|c| c.id())
    }

    /// Sets `limits.KEY = value` in `config.json` (read when serve starts;
    /// relays that know no such limit ignore it).
    pub fn set_limit(&self, key: &str, value: u64) {
        let path = self.home().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("config.json is readable"))
                .expect("config.json is JSON");
        if !config["limits"].is_object() {
            config["limits"] = serde_json::json!({});
        }
        config["limits"][key] = serde_json::json!(value);
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&config).expect("JSON encodes"),
        )
        .expect("config.json is writable");
    }

    /// What `serve` printed on stderr so far (all runs).
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `serve` was started and not stopped.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// SIGKILL, then wait for the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; waits up to `limit` for the relay to exit on its own (then
    /// SIGKILL). Returns its exit status and how long it took, or `None` if it
    /// had to be killed.
    pub fn stop_within(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<(ExitStatus, std::time::Duration)> {
        let mut child = self.server.take()?;
        let start = std::time::Instant::now();
        send_signal(child.id(), "TERM");
        while start.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((status, start.elapsed()));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// SIGTERM; waits up to 20 s for a graceful exit (then SIGKILL). Returns
    /// whether the relay exited on its own with status 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.server.take() else {
            return false;
        };
        send_signal(child.id(), "TERM");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies a directory tree (regular files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("the copy's directory can be created");
    for e in std::fs::read_dir(from).expect("the directory to copy is readable") {
        let e = e.expect("a directory entry is readable");
        let target = to.join(e.file_name());
        let t = e.file_type().expect("a file type is readable");
        if t.is_dir() {
            copy_dir(&e.path(), &target);
        } else if t.is_file() {
            std::fs::copy(e.path(), &target).expect("a file can be copied");
        }
    }
}

/// Opens the store of a laptop home that no minqing process runs on: an
/// encrypted one (every home the tests make) is unlocked with
/// [`TEST_PASSPHRASE`].
pub fn open_home_store(home: &Path) -> minqing_store::SledStorage {
    let dir = home.join("store");
    if !minqing_store::keyring::has_keyring(&dir) {
        return minqing_store::SledStorage::open(&dir)
            .expect("the laptop's store opens (no minqing process runs on it)");
    }
    let ring = minqing_store::keyring::Keyring::load(&dir).expect("the keyring reads");
    let pass = minqing_store::secret::Passphrase::new(TEST_PASSPHRASE);
    let key = ring
        .open(&pass, &dir)
        .expect("the keyring opens")
        .expect("the test passphrase opens the laptop's store");
    minqing_store::SledStorage::open_sealed(&dir, &key)
        .expect("the laptop's store opens (no minqing process runs on it)")
}

/// What a laptop holds to reach its relay: its bundle and its key and
/// certificate, read from its (not running) home's store. Homes of the old
/// format (a bundle that carried the key) are read too.
pub fn relay_credentials(home: &Home) -> (minqing_net::Bundle, minqing_net::Identity) {
    let store = open_home_store(home.path());
    let raw = store
        .meta_get("relay_bundle")
        .expect("meta is readable")
        .expect("the laptop is enrolled");
    let mut v: serde_json::Value = serde_json::from_slice(&raw).expect("the bundle is JSON");
    let identity = if v["format"] == "minqing-bundle/1" {
        v["format"] = serde_json::json!(minqing_net::BUNDLE_FORMAT);
        minqing_net::Identity {
            cert_pem: v["cert_pem"].as_str().expect("cert_pem").to_owned(),
            key_pem: v["key_pem"].as_str().expect("key_pem").to_owned(),
        }
    } else {
        let raw = store
            .meta_get("relay_identity")
            .expect("meta is readable")
            .expect("the laptop has its identity");
        serde_json::from_slice(&raw).expect("the identity is JSON")
    };
    let bundle = minqing_net::Bundle::parse_unchecked(&v.to_string()).expect("the bundle parses");
    (bundle, identity)
}

impl Home {
    /// A copy of another (not running) home: same device identity and data.
    pub fn copy_of(other: &Home) -> Home {
        let home = Home::new();
        copy_dir(other.path(), home.path());
        home
    }
}

/// Whether the kernel lets this login keep keys in its session keyring (the
/// key cache, docs/security.md). When it does not, says
/// `skipped: kernel keyring unavailable` on stderr: a test of the cache then
/// returns early, visibly, instead of passing on a cache that is not there.
pub fn key_cache_available() -> bool {
    let ok = minqing_store::keycache::available();
    if !ok {
        eprintln!("skipped: kernel keyring unavailable");
    }
    ok
}

/// The store id of a laptop home: the key cache's name for its data key.
pub fn store_id(home: &Path) -> String {
    minqing_store::keyring::Keyring::load(&home.join("store"))
        .expect("the home has a keyring")
        .store_id
}

/// Drops a store's data key from the key cache when dropped, so that a test
/// leaves nothing in the login's keyring, failed or not.
pub struct ForgetCachedKey(pub String);

impl Drop for ForgetCachedKey {
    fn drop(&mut self) {
        minqing_store::keycache::drop_key(&self.0);
    }
}
