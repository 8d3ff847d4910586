//! `cargo xtask demo`: a cadre's offline day from a clean home, told through the real binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One program the demo runs, with its home.
struct Tool {
    bin: PathBuf,
    home_flag: &'static str,
    home: PathBuf,
    label: String,
}

impl Tool {
    /// Runs the tool, echoing the command line and its output; fails on a non-zero exit.
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self.output(args)?;
        if !out.0 {
            return Err(format!(
                "`{} {}` failed:\n{}",
                self.label,
                args.join(" "),
                out.2
            ));
        }
        Ok(out.1)
    }

    /// Runs the tool and expects it to fail; returns its stderr.
    fn run_failing(&self, args: &[&str]) -> Result<String, String> {
        let out = self.output(args)?;
        if out.0 {
            return Err(format!(
                "`{} {}` should have failed but succeeded",
                self.label,
                args.join(" ")
            ));
        }
        Ok(out.2)
    }

    fn output(&self, args: &[&str]) -> Result<(bool, String, String), String> {
        println!(
            "\x1b[1m[{}]$ {} {}\x1b[0m",
            self.label,
            bin_name(&self.bin),
            quote(args)
        );
        let out = Command::new(&self.bin)
            .arg(self.home_flag)
            .arg(&self.home)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        for line in stdout.lines().chain(stderr.lines()) {
            println!("    {line}");
        }
        Ok((out.status.success(), stdout, stderr))
    }
}

fn bin_name(bin: &Path) -> String {
    bin.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn quote(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') || a.is_empty() {
                format!("\"{a}\"")
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last non-empty line of a command's stdout: where minqing prints a new record's id.
fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn say(text: &str) {
    println!("\n\x1b[1;34m== {text}\x1b[0m");
}

/// Runs the demo.
pub fn run(root: &Path) -> Result<(), String> {
    crate::cargo(&["build", "--workspace", "--bins"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bins = target.join("debug");
    let work = target.join("demo");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .map_err(|e| format!("cannot clear {}: {e}", work.display()))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let minqing = |name: &str| Tool {
        bin: bins.join("minqing"),
        home_flag: "--home",
        home: work.join(name),
        label: name.to_owned(),
    };
    offline_day(&minqing("laptop-zhang"))?;
    say("Done. The homes are under target/demo/ if you want to look around.");
    Ok(())
}

/// Part 1: one cadre, no network, a day of work.
fn offline_day(zhang: &Tool) -> Result<(), String> {
    say("A cadre's offline day: 张伟 sets up his laptop, with no network anywhere");
    zhang.run(&["init", "--cadre", "张伟", "--team", "城关服务队"])?;
    zhang.run(&["whoami"])?;
    zhang.run(&[
        "village",
        "add",
        "--id",
        "V001",
        "--name",
        "小河村",
        "--township",
        "城关镇",
    ])?;

    say("Resident files (居民档案): two households, three residents");
    let h1 = last_line(&zhang.run(&[
        "household",
        "add",
        "--village",
        "V001",
        "--address",
        "小河村三组12号",
        "--number",
        "0312",
    ])?);
    let h2 = last_line(&zhang.run(&[
        "household",
        "add",
        "--village",
        "V001",
        "--address",
        "小河村一组3号",
        "--number",
        "0103",
    ])?);
    let li = last_line(&zhang.run(&[
        "resident",
        "add",
        "--household",
        &h1,
        "--name",
        "李秀英",
        "--gender",
        "女",
        "--id-card",
        "370811195803151224",
        "--phone",
        "13905371234",
        "--relation",
        "户主",
        "--tag",
        "独居老人",
        "--tag",
        "老党员",
    ])?);
    let wang = last_line(&zhang.run(&[
        "resident",
        "add",
        "--household",
        &h2,
        "--name",
        "王建国",
        "--id-card",
        "370811196609059656",
        "--phone",
        "13251729110",
        "--relation",
        "户主",
        "--tag",
        "困难户",
    ])?);
    zhang.run(&[
        "resident",
        "add",
        "--household",
        &h2,
        "--name",
        "王子轩",
        "--birth",
        "2014-03-02",
        "--relation",
        "子",
        "--tag",
        "留守儿童",
    ])?;

    say("A mistake is refused with a message that says what to fix, and nothing is written");
    zhang.run_failing(&[
        "resident",
        "add",
        "--household",
        &h1,
        "--name",
        "赵六",
        "--id-card",
        "370811195803151228",
    ])?;

    say("Visit notes (民情日记)");
    zhang.run(&[
        "visit",
        "log",
        "--household",
        &h1,
        "--resident",
        &li,
        "--kind",
        "重点走访",
        "--note",
        "老人腿脚不便，反映自来水压力小，已联系村委查看管道。",
    ])?;
    zhang.run(&[
        "visit",
        "log",
        "--household",
        &h2,
        "--resident",
        &wang,
        "--kind",
        "regular",
        "--note",
        "家中小孩由爷爷照看，学习情况良好；询问低保续办材料。",
    ])?;

    say("A demand (诉求) enters the ledger in state 受理");
    let demand = last_line(&zhang.run(&[
        "demand",
        "open",
        "--resident",
        &li,
        "--category",
        "供水",
        "--text",
        "自来水水压不足，高峰时段断水",
    ])?);

    say("Reading it back: lists, a resident's file by a 6-character prefix, JSON for scripts");
    zhang.run(&["resident", "list", "--village", "V001"])?;
    zhang.run(&["resident", "show", &li[..6]])?;
    zhang.run(&["visit", "list", "--village", "V001"])?;
    zhang.run(&["demand", "show", &demand, "--json"])?;
    Ok(())
}
