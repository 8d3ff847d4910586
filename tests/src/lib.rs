//! Support code for the end-to-end tests: find the built binaries, run them in
//! temporary homes, and check their exit codes and output.
//!
//! The binaries are built by `cargo build --workspace --bins` before the tests
//! run; tests never call cargo themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

/// Environment variables of the binaries that must not leak in from the
/// developer's shell.
const SCRUBBED_ENV: &[&str] = &[
    "MINQING_HOME",
    "MINQING_LOG",
    "MINQING_TEST_RNG_SEED",
    "MINQING_RELAY_HOME",
];

/// The workspace's target directory: `CARGO_TARGET_DIR` if set (relative to the
/// workspace root), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace") // invariant of this repository's layout
        .to_path_buf();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Path of a built binary of the workspace (`minqing`, `minqing-relay`, ...).
/// Panics with instructions if it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let profile = std::env::var("MINQING_E2E_PROFILE").unwrap_or_else(|_| "debug".to_owned());
    let path = target_dir()
        .join(profile)
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A command for a built binary with a clean environment (no `MINQING_*`
/// variables from the caller's shell).
pub fn command(name: &str) -> Command {
    let mut cmd = Command::new(bin(name));
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
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

    fn run(&self, mut cmd: Command, args: &[&str]) -> Run {
        let out = cmd.output().expect("minqing can be started");
        Run::new(format!("minqing {}", args.join(" ")), out)
    }

    /// `minqing init --cadre NAME` on this home; returns the device id.
    pub fn init(&self, cadre: &str) -> String {
        self.minqing(&["init", "--cadre", cadre]).id()
    }
}
