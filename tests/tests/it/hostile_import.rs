//! Malicious `.xlsx` registers against the real `minqing import`: sparse sheets
//! claiming the whole grid (A1 + XFD1048576), zip bombs, a shared-string table
//! declaring a trillion entries, one long shared string referenced everywhere,
//! rows padded out to the last column. Each file is made from a seed; every
//! import must end with a clear error (exit 1) or succeed, never abort, and its
//! peak resident memory (GNU time's "maximum resident set size") must stay
//! under the bound docs/cli.md states (`MEMORY_BOUND_BYTES`, 512 MiB).
//!
//! `MINQING_HOSTILE_SEEDS=N` runs N seeds per kind (default 2; CI keeps the
//! default, by hand try 20).

use std::io::Write;
use std::path::Path;
use std::process::Command;

use minqing_e2e::Home;
use rand::{Rng, SeedableRng};

const BOUND_KIB: u64 = 512 * 1024;

fn opts() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true)
}

/// Writes one part of an .xlsx (a sheet's XML body, sharedStrings.xml).
type PartWriter<'a> = &'a mut dyn FnMut(&mut dyn Write);

/// Writes an .xlsx with the given sheet XML body producer and optional
/// sharedStrings.xml producer.
fn xlsx(path: &Path, sheet: PartWriter<'_>, sst: Option<PartWriter<'_>>) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let has_sst = sst.is_some();
    z.start_file("[Content_Types].xml", opts()).unwrap();
    z.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#).unwrap();
    z.start_file("_rels/.rels", opts()).unwrap();
    z.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#).unwrap();
    z.start_file("xl/workbook.xml", opts()).unwrap();
    z.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#).unwrap();
    z.start_file("xl/_rels/workbook.xml.rels", opts()).unwrap();
    let mut rels = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>"#,
    );
    if has_sst {
        rels.push_str(r#"<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>"#);
    }
    rels.push_str("</Relationships>");
    z.write_all(rels.as_bytes()).unwrap();
    if let Some(sst) = sst {
        z.start_file("xl/sharedStrings.xml", opts()).unwrap();
        sst(&mut z);
    }
    z.start_file("xl/worksheets/sheet1.xml", opts()).unwrap();
    z.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#).unwrap();
    sheet(&mut z);
    z.write_all(b"</worksheet>").unwrap();
    z.finish().unwrap();
}

/// Column letters of a 0-based column index.
fn col(mut c: u32) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (c % 26) as u8);
        if c < 26 {
            break;
        }
        c = c / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

fn header(w: &mut dyn Write) {
    w.write_all(r#"<c r="A1" t="inlineStr"><is><t>姓名</t></is></c><c r="B1" t="inlineStr"><is><t>住址</t></is></c>"#.as_bytes()).unwrap();
}

/// Makes the malicious file of `kind` for `seed`.
fn make(kind: &str, seed: u64, path: &Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    match kind {
        "sparse" => {
            let far_row = rng.random_range(500_000..=1_048_576u32);
            let far_col = rng.random_range(10_000..16_384u32);
            xlsx(
                path,
                &mut |w| {
                    write!(
                        w,
                        r#"<dimension ref="A1:XFD1048576"/><sheetData><row r="1">"#
                    )
                    .unwrap();
                    header(w);
                    write!(w, r#"</row><row r="{far_row}"><c r="{}{far_row}"><v>1</v></c></row></sheetData>"#, col(far_col)).unwrap();
                },
                None,
            );
        }
        "sparse-wide" => {
            // Within MAX_ROWS, but every row padded to a far column.
            let rows = rng.random_range(20_000..40_000u32);
            xlsx(
                path,
                &mut |w| {
                    w.write_all(b"<sheetData><row r=\"1\">").unwrap();
                    header(w);
                    w.write_all(b"</row>").unwrap();
                    for r in 2..rows {
                        write!(w, r#"<row r="{r}"><c r="GR{r}"><v>1</v></c></row>"#).unwrap();
                    }
                    w.write_all(b"</sheetData>").unwrap();
                },
                None,
            );
        }
        "bomb" => {
            let mib = rng.random_range(140..400u32);
            let pad = vec![b' '; 1024 * 1024];
            xlsx(
                path,
                &mut |w| {
                    w.write_all(b"<sheetData>").unwrap();
                    for _ in 0..mib {
                        w.write_all(&pad).unwrap();
                    }
                    w.write_all(b"</sheetData>").unwrap();
                },
                None,
            );
        }
        "sst-count" => {
            let n: u64 = rng.random_range(10_000_000_000..u64::MAX / 2);
            xlsx(
                path,
                &mut |w| {
                    w.write_all(b"<sheetData><row r=\"1\">").unwrap();
                    header(w);
                    w.write_all(b"</row></sheetData>").unwrap();
                },
                Some(&mut |w| {
                    write!(w, r#"<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{n}" uniqueCount="{n}"><si><t>x</t></si></sst>"#).unwrap();
                }),
            );
        }
        "sst-amplify" => {
            let len = rng.random_range(256 * 1024..1024 * 1024usize);
            let rows = rng.random_range(200..400u32);
            let long = "路".repeat(len / 3);
            xlsx(
                path,
                &mut |w| {
                    w.write_all(b"<sheetData><row r=\"1\">").unwrap();
                    header(w);
                    w.write_all(b"</row>").unwrap();
                    for r in 2..rows {
                        write!(w, r#"<row r="{r}">"#).unwrap();
                        for c in 0..150 {
                            write!(w, r#"<c r="{}{r}" t="s"><v>0</v></c>"#, col(c)).unwrap();
                        }
                        w.write_all(b"</row>").unwrap();
                    }
                    w.write_all(b"</sheetData>").unwrap();
                },
                Some(&mut |w| {
                    write!(w, r#"<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>{long}</t></si></sst>"#).unwrap();
                }),
            );
        }
        other => panic!("unknown kind {other}"),
    }
}

/// Runs `minqing import` under GNU time; returns (exit code, stderr, peak KiB).
fn import(home: &Home, file: &Path) -> (Option<i32>, String, Option<u64>) {
    let time = Path::new("/usr/bin/time");
    let minqing = minqing_e2e::bin("minqing");
    let mut cmd = if time.is_file() {
        let mut c = Command::new(time);
        c.args(["-f", "PEAK_KIB=%M"]).arg(minqing);
        c
    } else {
        Command::new(minqing)
    };
    // The harness's environment (the passphrase file above all): without
    // it every import stopped at the unlock and no spreadsheet was read.
    for (k, v) in minqing_e2e::command("minqing").get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.arg("--home")
        .arg(home.path())
        .args(["import", "residents"])
        .arg(file)
        .args(["--village", "V1", "--dry-run"]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_KIB="))
        .and_then(|v| v.trim().parse().ok());
    let mut code = out.status.code();
    // GNU time exits with the child's status, or 128+signal when it was killed.
    if time.is_file() && stderr.contains("Command terminated by signal") {
        code = None;
    }
    (code, stderr, peak)
}

#[test]
fn malicious_xlsx_files_fail_clearly_within_the_memory_bound() {
    let seeds: u64 = std::env::var("MINQING_HOSTILE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let home = Home::new();
    home.init("张三");
    home.minqing(&["village", "add", "--id", "V1", "--name", "小河村"])
        .ok();
    let dir = tempfile::tempdir().unwrap();
    let mut worst = 0;
    for kind in ["sparse", "sparse-wide", "bomb", "sst-count", "sst-amplify"] {
        for seed in 0..seeds {
            let file = dir.path().join(format!("{kind}-{seed}.xlsx"));
            make(kind, seed, &file);
            let (code, stderr, peak) = import(&home, &file);
            let size = std::fs::metadata(&file).unwrap().len();
            eprintln!(
                "{kind:12} seed {seed}: {size:>8} bytes, exit {code:?}, peak {peak:?} KiB: {}",
                stderr
                    .lines()
                    .find(|l| l.starts_with("error:"))
                    .unwrap_or("-")
            );
            assert!(
                matches!(code, Some(0 | 1)),
                "{kind} seed {seed} (replay: MINQING_HOSTILE_SEEDS) ended with {code:?}:\n{stderr}"
            );
            if code == Some(1) {
                assert_eq!(
                    stderr.matches("error:").count(),
                    1,
                    "one clear line:\n{stderr}"
                );
            }
            assert!(
                !stderr.contains("passphrase"),
                "{kind} seed {seed}: the import never reached the file:\n{stderr}"
            );
            if let Some(peak) = peak {
                worst = worst.max(peak);
                assert!(
                    peak < BOUND_KIB,
                    "{kind} seed {seed}: peak {peak} KiB over the {BOUND_KIB} KiB bound"
                );
            }
        }
    }
    eprintln!("worst peak resident memory: {worst} KiB (bound {BOUND_KIB} KiB)");
}
