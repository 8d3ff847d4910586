//! `minqing-relay user add|list|disable|enable|passwd`: the county console's
//! accounts (docs/console.md). Passwords come from the terminal (asked twice,
//! no echo) or, with `--password-stdin`, from standard input's first line —
//! never from the command line, which other users see in `ps`.

use std::io::{BufRead, Read};

use anyhow::{Context, Result};
use minqing_store::secret::Passphrase;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::args::UserCmd;
use crate::cmd::esc;
use crate::console::accounts::{
    self, Account, Role, Scope, check_display, check_login_name, check_new_password, hash_password,
};
use crate::console::departments;
use crate::registry::{Home, now_rfc3339, usage};

const HINT: &str = "--password-stdin (the password on standard input's first line)";

/// Runs a `user` subcommand.
pub fn run(home: &Home, cmd: UserCmd) -> Result<()> {
    home.config()?;
    match cmd {
        UserCmd::Add {
            name,
            role,
            display,
            scope,
            department,
            password_stdin,
            json,
        } => add(
            home,
            AddArgs {
                name,
                role,
                display,
                scope,
                department,
            },
            password_stdin,
            json,
        ),
        UserCmd::List { json } => list(home, json),
        UserCmd::Disable { name, json } => set_disabled(home, &name, true, json),
        UserCmd::Enable { name, json } => set_disabled(home, &name, false, json),
        UserCmd::Passwd {
            name,
            password_stdin,
            json,
        } => passwd(home, &name, password_stdin, json),
    }
}

/// `user add`'s raw arguments.
struct AddArgs {
    name: String,
    role: String,
    display: Option<String>,
    scope: Option<String>,
    department: Option<String>,
}

/// Reads a new password: standard input's first line, or asked twice on
/// the terminal. Checked for length.
fn new_password(from_stdin: bool) -> Result<Zeroizing<String>> {
    let password = if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .take(4096)
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned())
    } else {
        let ask = |prompt: &str| -> Result<Zeroizing<String>> {
            let p = Passphrase::prompt(prompt, "the account's password", HINT)?;
            Ok(Zeroizing::new(
                String::from_utf8(p.as_bytes().to_vec()).context("the password is not UTF-8")?,
            ))
        };
        let a = ask("new console password: ")?;
        if let Err(e) = check_new_password(&a) {
            usage!("{e}");
        }
        let b = ask("new console password again: ")?;
        if *a != *b {
            usage!("the two entries of the password differ; nothing was changed");
        }
        a
    };
    if let Err(e) = check_new_password(&password) {
        usage!("{e}");
    }
    Ok(password)
}

fn add(home: &Home, raw: AddArgs, password_stdin: bool, json: bool) -> Result<()> {
    let name = raw.name.trim().to_owned();
    if let Err(e) = check_login_name(&name) {
        usage!("{e}");
    }
    let Some(role) = Role::parse(&raw.role) else {
        usage!(
            "--role {:?} is not known: use operator, supervisor, department or viewer",
            raw.role
        );
    };
    let display = match check_display(raw.display.as_deref().unwrap_or(&name)) {
        Ok(d) => d,
        Err(e) => usage!("{e}"),
    };
    let scope = match (role, raw.scope.as_deref()) {
        (Role::Supervisor, None) => usage!(
            "a supervisor needs --scope county or --scope township:NAME (a township of `village list`)"
        ),
        (Role::Supervisor, Some(s)) => {
            let Some(scope) = Scope::parse(s) else {
                usage!("--scope {s:?} is not known: use county or township:NAME");
            };
            if let Scope::Township(t) = &scope {
                let villages = home.villages()?;
                if !villages.values().any(|v| v.township.as_deref() == Some(t)) {
                    let known: Vec<&str> = villages
                        .values()
                        .filter_map(|v| v.township.as_deref())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    usage!(
                        "--scope: no village is in township {t:?} (known: {}); add villages with `village add --township` first",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    );
                }
            }
            Some(scope)
        }
        (_, Some(_)) => usage!("--scope is only for supervisors"),
        (_, None) => None,
    };
    let department = match (role, raw.department.as_deref()) {
        (Role::Department, None) => {
            usage!("a department account needs --department NAME (a name of `department list`)")
        }
        (Role::Department, Some(d)) => {
            let list = departments::load(home)?;
            match list.resolve(d) {
                Some(canonical) => Some(canonical.to_owned()),
                None => usage!(
                    "--department {d:?} is not in the department list: add it first with `minqing-relay department add {d}`"
                ),
            }
        }
        (_, Some(_)) => usage!("--department is only for department accounts"),
        (_, None) => None,
    };
    // Checked before the password is asked, again under the lock after.
    if accounts::load(home)?.contains_key(&name) {
        usage!("account {name} exists already: use `user passwd {name}` or another name");
    }
    let password = new_password(password_stdin)?;
    let hash = hash_password(&password).map_err(anyhow::Error::msg)?;
    let _lock = home.lock()?;
    let mut all = accounts::load(home)?;
    if all.contains_key(&name) {
        usage!("account {name} exists already: use `user passwd {name}` or another name");
    }
    let now = now_rfc3339();
    let account = Account {
        name: name.clone(),
        display,
        role,
        scope,
        department,
        hash,
        disabled: false,
        created_at: now.clone(),
        password_changed_at: now,
    };
    all.insert(name.clone(), account.clone());
    accounts::save(home, &all)?;
    home.audit(
        "console_account",
        None,
        None,
        format!("added account {name} ({role})"),
    )?;
    if json {
        print_json(&account.view())
    } else {
        println!(
            "added console account {} ({}{})",
            esc(&name),
            role.name_zh(),
            describe(&account)
        );
        Ok(())
    }
}

fn describe(a: &Account) -> String {
    match (&a.scope, &a.department) {
        (Some(s), _) => format!(", {}", esc(&s.to_string())),
        (_, Some(d)) => format!(", {}", esc(d)),
        _ => String::new(),
    }
}

fn list(home: &Home, json: bool) -> Result<()> {
    let all = accounts::load(home)?;
    if json {
        let views: Vec<_> = all.values().map(Account::view).collect();
        return print_json(&views);
    }
    if all.is_empty() {
        println!("no console accounts: add one with `minqing-relay user add NAME --role operator`");
        return Ok(());
    }
    for a in all.values() {
        println!(
            "{:<20} {:<10} {:<24} {}{}",
            esc(&a.name),
            a.role.as_key(),
            esc(&a.display),
            describe(a).trim_start_matches(", "),
            if a.disabled { "  [disabled]" } else { "" }
        );
    }
    Ok(())
}

fn set_disabled(home: &Home, name: &str, disabled: bool, json: bool) -> Result<()> {
    let _lock = home.lock()?;
    let mut all = accounts::load(home)?;
    let Some(a) = all.get_mut(name.trim()) else {
        usage!(
            "no console account {:?}: see `minqing-relay user list`",
            name
        );
    };
    a.disabled = disabled;
    let view = a.view();
    accounts::save(home, &all)?;
    let what = if disabled { "disabled" } else { "enabled" };
    home.audit(
        "console_account",
        None,
        None,
        format!("{what} account {}", view.name),
    )?;
    if json {
        print_json(&view)
    } else {
        println!(
            "{what} console account {}{}",
            esc(&view.name),
            if disabled {
                " (its sessions end at their next request)"
            } else {
                ""
            }
        );
        Ok(())
    }
}

fn passwd(home: &Home, name: &str, password_stdin: bool, json: bool) -> Result<()> {
    let name = name.trim();
    if !accounts::load(home)?.contains_key(name) {
        usage!("no console account {name:?}: see `minqing-relay user list`");
    }
    let password = new_password(password_stdin)?;
    let hash = hash_password(&password).map_err(anyhow::Error::msg)?;
    let _lock = home.lock()?;
    let mut all = accounts::load(home)?;
    let Some(a) = all.get_mut(name) else {
        usage!("no console account {name:?}: see `minqing-relay user list`");
    };
    a.hash = hash;
    a.password_changed_at = now_rfc3339();
    let view = a.view();
    accounts::save(home, &all)?;
    home.audit(
        "console_account",
        None,
        None,
        format!("changed the password of account {name}"),
    )?;
    if json {
        print_json(&view)
    } else {
        println!("changed the password of console account {}", esc(name));
        Ok(())
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
