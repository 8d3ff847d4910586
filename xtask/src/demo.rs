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
    let relay = Tool {
        bin: bins.join("minqing-relay"),
        home_flag: "--home",
        home: work.join("relay"),
        label: "relay".to_owned(),
    };
    let laptops = [
        minqing("laptop-a"),
        minqing("laptop-b"),
        minqing("laptop-c"),
    ];
    let result = county(&relay, &laptops, &work);
    say("Done. The homes are under target/demo/ if you want to look around.");
    result
}

/// A running `minqing-relay serve`, stopped with SIGTERM when dropped.
struct Serving(std::process::Child);

impl Serving {
    fn start(relay: &Tool) -> Result<Serving, String> {
        println!("\x1b[1m[relay]$ minqing-relay serve &\x1b[0m");
        let child = Command::new(&relay.bin)
            .arg(relay.home_flag)
            .arg(&relay.home)
            .arg("serve")
            .spawn()
            .map_err(|e| format!("cannot start the relay: {e}"))?;
        // Give the endpoint a moment to bind; laptops retry within their timeout anyway.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Ok(Serving(child))
    }

    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.terminate();
        }
    }
}

/// A free UDP port on 127.0.0.1 for the demo relay.
fn free_port() -> Result<u16, String> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Part 2: a county relay, three laptops, two of them sharing 小河村, offline edits that merge.
fn county(relay: &Tool, laptops: &[Tool; 3], work: &Path) -> Result<(), String> {
    let [a, b, c] = laptops;
    say("The county relay: the operator creates it, adds villages and enrols three laptops");
    let listen = format!("127.0.0.1:{}", free_port()?);
    relay.run(&["init", "--name", "城关镇民情中心", "--listen", &listen])?;
    relay.run(&["village", "add", "--id", "V001", "--name", "小河村"])?;
    relay.run(&["village", "add", "--id", "V002", "--name", "大王庄"])?;
    say(
        "The relay comes up. Each laptop's bundle works once: at its first contact the laptop makes its own key (it never leaves the laptop) and gets its certificate",
    );
    let serving = Serving::start(relay)?;
    let mut ids = Vec::new();
    for (laptop, cadre, villages) in [
        (a, "张伟", "V001"),
        (b, "王芳", "V001"),
        (c, "刘强", "V002"),
    ] {
        let bundle = work.join(format!("{}.bundle", laptop.label));
        let bundle = bundle.to_string_lossy().into_owned();
        let out = relay.run(&[
            "enroll",
            "--cadre",
            cadre,
            "--team",
            "城关服务队",
            "--villages",
            villages,
            "--out",
            &bundle,
        ])?;
        ids.push(last_line(&out));
        laptop.run(&["init", "--bundle", &bundle])?;
    }
    relay.run(&["devices"])?;
    say("A bundle used once cannot set up a second laptop");
    let second = work.join("second-laptop");
    let bundle_a = work.join(format!("{}.bundle", a.label));
    let out = Tool {
        label: "second laptop".into(),
        bin: a.bin.clone(),
        home_flag: a.home_flag,
        home: second,
    }
    .run_failing(&["init", "--bundle", &bundle_a.to_string_lossy()])?;
    if !out.contains("already used on another laptop") {
        return Err(format!(
            "a reused bundle was not refused as expected: {out}"
        ));
    }

    say("Every laptop fetches its villages (and only those)");
    for laptop in [a, b, c] {
        laptop.run(&["sync"])?;
    }
    say("张伟 registers a household and a resident in 小河村, and syncs; 王芳 receives them");
    let h = last_line(&a.run(&[
        "household",
        "add",
        "--village",
        "V001",
        "--address",
        "小河村二组7号",
        "--number",
        "0207",
    ])?);
    let r = last_line(&a.run(&[
        "resident",
        "add",
        "--household",
        &h,
        "--name",
        "周桂兰",
        "--gender",
        "女",
        "--id-card",
        "370811194305056780",
        "--phone",
        "13905370001",
        "--tag",
        "独居老人",
    ])?);
    a.run(&["sync"])?;
    b.run(&["sync"])?;
    b.run(&["resident", "list", "--village", "V001"])?;

    say("The network goes down for days (the relay stops). Both cadres keep working offline");
    serving.stop();
    a.run(&["resident", "edit", &r, "--phone", "13905370002"])?;
    a.run(&[
        "visit",
        "log",
        "--household",
        &h,
        "--resident",
        &r,
        "--kind",
        "重点走访",
        "--note",
        "老人换了新手机号，身体状况稳定。",
    ])?;
    b.run(&[
        "resident",
        "edit",
        &r,
        "--phone",
        "13905370003",
        "--add-tag",
        "困难户",
    ])?;
    b.run(&[
        "visit",
        "log",
        "--household",
        &h,
        "--resident",
        &r,
        "--kind",
        "普遍走访",
        "--note",
        "了解到老人医保报销有困难，帮助联系镇医保站。",
    ])?;
    c.run(&["status"])?;
    a.run_failing(&["sync", "--timeout", "2"])?;

    say(
        "The link returns: each laptop syncs; the relay merges; a second pass brings everyone up to date",
    );
    let serving = Serving::start(relay)?;
    for laptop in [a, b, c, a, b] {
        laptop.run(&["sync"])?;
    }
    let show_a = a.run(&["resident", "show", &r, "--json"])?;
    let show_b = b.run(&["resident", "show", &r, "--json"])?;
    let list_a = a.run(&["visit", "list", "--village", "V001", "--json"])?;
    let list_b = b.run(&["visit", "list", "--village", "V001", "--json"])?;
    if show_a != show_b || list_a != list_b {
        return Err("the two laptops did not converge".into());
    }
    say(
        "Converged: 张伟's and 王芳's laptops print byte-identical JSON — one phone number won on both, both visits and both tags are kept",
    );
    a.run(&["resident", "show", &r])?;
    c.run(&["village", "list"])?;

    say("刘强's laptop is lost: the operator revokes it, and the relay refuses it");
    relay.run(&["revoke", &ids[2]])?;
    c.run_failing(&["sync"])?;
    serving.stop();
    relay.run(&["audit"])?;
    relay.run(&["devices"])?;
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
