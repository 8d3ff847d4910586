//! Crash safety: `minqing visit log` is killed with SIGKILL at random moments;
//! every visit whose command had reported success survives, and the store
//! always opens again. The seed is printed; `MINQING_CRASH_SEED=N` replays it,
//! `MINQING_CRASH_ROUNDS=N` changes the number of writes (default 150).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use minqing_e2e::{Home, Run, last_line};
use rand::{Rng, SeedableRng};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

#[test]
fn sigkill_never_loses_a_reported_write() {
    let seed = env_u64("MINQING_CRASH_SEED").unwrap_or_else(rand::random);
    let rounds = env_u64("MINQING_CRASH_ROUNDS").unwrap_or(150);
    println!("crash test seed {seed} (replay with MINQING_CRASH_SEED={seed}), {rounds} rounds");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let home = Home::new();
    home.init("张伟");
    home.minqing(&["village", "add", "--id", "V001", "--name", "小河村"])
        .ok();
    let h = home
        .minqing(&[
            "household",
            "add",
            "--village",
            "V001",
            "--address",
            "小河村三组12号",
        ])
        .id();

    // visit id -> note, for every command that exited 0 and printed an id.
    let mut confirmed: BTreeMap<String, String> = BTreeMap::new();
    let (mut killed, mut finished) = (0, 0);
    for i in 0..rounds {
        let note = format!("第{i}次走访：老人身体尚可，反映路灯不亮。");
        let child = home
            .minqing_command(&[
                "visit",
                "log",
                "--household",
                &h,
                "--kind",
                "regular",
                "--note",
                &note,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("minqing starts");
        // Most kills land while the process opens the store, loads or writes;
        // some rounds are left to finish.
        let delay = rng.random_range(0..40);
        std::thread::sleep(Duration::from_millis(delay));
        let _ = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let out = child.wait_with_output().expect("minqing can be waited for");
        let run = Run::new(format!("visit log #{i}"), out);
        match run.status.code() {
            Some(0) => {
                finished += 1;
                confirmed.insert(last_line(&run.stdout), note);
            }
            Some(code) => panic!(
                "seed {seed}: round {i}: minqing exited {code} on its own (the store must always open):\n{}",
                run.stderr
            ),
            None => killed += 1, // killed by the signal: the write may or may not be there
        }
    }
    println!("{killed} killed, {finished} finished");

    let visits = home.minqing(&["visit", "list", "--json"]).json();
    let held: BTreeMap<String, String> = visits
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_owned(),
                v["note"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (id, note) in &confirmed {
        assert_eq!(
            held.get(id),
            Some(note),
            "seed {seed}: reported visit {id} is missing after SIGKILL"
        );
    }
    // Whatever is there is whole: every held visit has a note from the loop.
    assert!(
        held.values()
            .all(|n| n.starts_with('第') && n.ends_with('。'))
    );
    // And the store keeps taking writes.
    let after = home
        .minqing(&[
            "visit",
            "log",
            "--household",
            &h,
            "--kind",
            "补访",
            "--note",
            "重启后补访",
        ])
        .id();
    let list = home.minqing(&["visit", "list", "--json"]).json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == after.as_str())
    );
}
