//! `minqing-fuzz-seeds DIR [TARGET...]`: writes the seed inputs of each target
//! (all by default) to `DIR/<target>/<name>`, made with the crates' own encoders.

use std::path::PathBuf;
use std::process::ExitCode;

use minqing_fuzz::Target;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: minqing-fuzz-seeds DIR [TARGET...]");
        return ExitCode::from(2);
    };
    let mut targets = Vec::new();
    for name in args {
        match Target::from_name(&name) {
            Some(t) => targets.push(t),
            None => {
                eprintln!("unknown fuzz target {name:?}");
                return ExitCode::from(2);
            }
        }
    }
    if targets.is_empty() {
        targets = Target::ALL.to_vec();
    }
    for t in targets {
        let d = dir.join(t.name());
        if let Err(e) = std::fs::create_dir_all(&d) {
            eprintln!("cannot create {}: {e}", d.display());
            return ExitCode::FAILURE;
        }
        let seeds = minqing_fuzz::seeds::seeds(t);
        for (name, bytes) in &seeds {
            let path = d.join(name);
            if let Err(e) = std::fs::write(&path, bytes) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        println!("{}: {} seeds in {}", t.name(), seeds.len(), d.display());
    }
    ExitCode::SUCCESS
}
