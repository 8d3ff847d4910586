//! 设置: this laptop and its county relay.
//!
//! - On a home not set up yet, [`enrol_page`]: the enrolment form — the file
//!   the county's operator gave the cadre (`minqing-relay enroll --out`) and
//!   the passphrase that will protect the data on this laptop. It posts to
//!   [`routes::SETTINGS_ENROL`] (multipart, the CSRF token in the action's
//!   query); the passphrase travels only in the form's body.
//! - On a set-up home, [`settings_page`]: the device, the relay, the villages
//!   assigned and held, where the data lives, and what must be done at the
//!   terminal with the app stopped (passphrase, backup, restore, wipe), each
//!   with its command. A home set up standalone gets the upload form there
//!   (no passphrase: the home is open), to join a relay with its villages.

use maud::{Markup, html};

use crate::layout::{self, Nav};
use crate::{Ctx, routes};

/// Which passphrase fields the enrolment form asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassphraseAsk {
    /// A new home: a new passphrase, twice.
    New,
    /// An enrolment begun earlier (its first contact failed): the passphrase
    /// set then, once.
    Existing,
    /// An enrolment begun earlier in this launch: the service still holds
    /// the passphrase in memory; only the file is asked for again.
    Known,
}

/// The enrolment form: the file and the passphrase fields `ask` calls for.
fn enrol_form(ctx: &Ctx<'_>, ask: PassphraseAsk) -> Markup {
    let action = format!(
        "{}?{}={}",
        routes::SETTINGS_ENROL,
        crate::CSRF_FIELD,
        ctx.csrf
    );
    html! {
        form #enrol method="post" action=(action) enctype="multipart/form-data" aria-label="登记本机" {
            p {
                label for="bundle" { "登记文件（县里发给你的文件）" }
                input #bundle type="file" name="bundle" required;
            }
            @match ask {
                PassphraseAsk::New => {
                    p.muted { "设置一个密码：本机上的数据用它加密，每次打开民情日记时要输入。至少 8 个字符，请记牢；忘记时只能通过县里找回。" }
                    p {
                        label for="passphrase" { "设置本机密码" }
                        input #passphrase type="password" name="passphrase" autocomplete="new-password" minlength="8" required;
                    }
                    p {
                        label for="passphrase2" { "再输一次密码" }
                        input #passphrase2 type="password" name="passphrase2" autocomplete="new-password" minlength="8" required;
                    }
                }
                PassphraseAsk::Existing => {
                    p {
                        label for="passphrase" { "本机密码（上次登记时设置的）" }
                        input #passphrase type="password" name="passphrase" autocomplete="current-password" required;
                    }
                }
                PassphraseAsk::Known => {}
            }
            button type="submit" { "登记本机" }
        }
    }
}

/// The 设置 page of a home not set up yet: the enrolment form.
pub fn enrol_page(ctx: &Ctx<'_>, ask: PassphraseAsk) -> String {
    let body = html! {
        p #setup-state { "这台电脑还没有登记到县里的中继。登记后，县里分配给你的村会自动同步到本机。" }
        @if ask != PassphraseAsk::New {
            p.muted { "上次登记没有完成（没有连上县里的中继）。联网后用同一个登记文件再登记一次即可，本机已保存的内容不会丢。" }
        }
        (enrol_form(ctx, ask))
        p.muted { "登记时本机会连接县里的中继一次，取得本机的证书；本机的私钥只在本机生成、从不外传。一个登记文件只能用一次。" }
    };
    layout::page(ctx, Nav::Settings, "设置", body)
}

/// The relay a set-up laptop syncs with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayInfo {
    /// Its name.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// The villages the enrolment assigned (ids).
    pub villages: Vec<String>,
}

/// What the 设置 page of a set-up laptop shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsView {
    /// The device id.
    pub device_id: String,
    /// The service team, if any.
    pub team: Option<String>,
    /// The relay, if enrolled (a standalone laptop has none).
    pub relay: Option<RelayInfo>,
    /// The villages held on this laptop: id and name.
    pub held: Vec<(String, String)>,
    /// Where the data lives (the home directory).
    pub home: String,
}

/// What must not be done through a running app, and the command for it.
const AT_THE_TERMINAL: &[(&str, &str, &str)] = &[
    (
        "修改密码",
        "minqing passwd",
        "改密码要重新加密本机的钥匙，应用运行时不能做。",
    ),
    (
        "备份",
        "minqing backup --to 备份文件",
        "备份要在没有别的程序写入时一次做完。",
    ),
    (
        "从备份恢复",
        "minqing restore 备份文件 --home 新目录",
        "恢复到一个新的目录，不会覆盖正在用的数据。",
    ),
    (
        "清除本机数据",
        "由县里在中继上执行 minqing-relay revoke --wipe 设备号",
        "电脑丢失或交回时，由县里下令清除；本机下次联网时执行。",
    ),
];

/// The 设置 page of a set-up laptop.
pub fn settings_page(ctx: &Ctx<'_>, s: &SettingsView) -> String {
    let body = html! {
        table #device {
            caption { "本机" }
            tbody {
                tr { th scope="row" { "干部" } td { (ctx.cadre) } }
                tr { th scope="row" { "服务队" } td { (s.team.as_deref().unwrap_or("—")) } }
                tr { th scope="row" { "设备号" } td { code { (s.device_id) } } }
                tr { th scope="row" { "数据位置" } td { code #data-location { (s.home) } } }
                @match &s.relay {
                    Some(r) => {
                        tr { th scope="row" { "县里的中继" } td #relay { (r.name) " " small.muted { (r.addr) } } }
                        tr { th scope="row" { "登记时分配的村" } td #assigned { (r.villages.join("、")) } }
                    }
                    None => {
                        tr { th scope="row" { "县里的中继" } td #relay { "未加入（单机使用）" } }
                    }
                }
            }
        }
        h2 { "本机上的村（" (s.held.len()) "）" }
        @if s.held.is_empty() {
            (layout::none("本机还没有村的数据：登记后第一次同步时会取得。"))
        } @else {
            ul #held {
                @for (id, name) in &s.held {
                    li { a href=(routes::village(id)) { (name) } " " small.muted { (id) } }
                }
            }
        }
        @if s.relay.is_none() {
            h2 { "加入县里的中继" }
            p { "本机是单机使用的。上传县里为本机（设备号 " code { (s.device_id) } "）做的登记文件，就加入县里的中继；本机已有的村都保留，下次同步时送到县里。" }
            (enrol_form(ctx, PassphraseAsk::Known))
        }
        h2 { "要在终端里做的事" }
        p { "下面这些事不能在运行中的民情日记里做：先在终端按 Ctrl-C 停止它（已保存的内容不会丢），再运行对应的命令。" }
        table #at-the-terminal {
            thead { tr { th scope="col" { "事项" } th scope="col" { "命令" } th scope="col" { "为什么" } } }
            tbody {
                @for (what, command, why) in AT_THE_TERMINAL {
                    tr { td { (what) } td { code { (command) } } td { (why) } }
                }
            }
        }
    };
    layout::page(ctx, Nav::Settings, "设置", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::ctx;

    #[test]
    fn a_new_home_asks_for_the_file_and_a_new_passphrase_twice() {
        let html = enrol_page(&ctx("2026-03-02"), PassphraseAsk::New);
        assert!(html.contains("enctype=\"multipart/form-data\""), "{html}");
        // The CSRF token in the action (multipart), never the passphrase.
        assert!(
            html.contains("action=\"/settings/enrol?csrf=tok123\""),
            "{html}"
        );
        assert!(html.contains("type=\"file\" name=\"bundle\""), "{html}");
        assert_eq!(html.matches("type=\"password\"").count(), 2, "{html}");
        assert!(html.contains("设置本机密码") && html.contains("再输一次密码"));
        assert!(html.contains("aria-current=\"page\""), "{html}");
    }

    #[test]
    fn an_unfinished_enrolment_asks_once_or_not_at_all() {
        let html = enrol_page(&ctx("2026-03-02"), PassphraseAsk::Existing);
        assert_eq!(html.matches("type=\"password\"").count(), 1, "{html}");
        assert!(html.contains("上次登记没有完成"), "{html}");
        let html = enrol_page(&ctx("2026-03-02"), PassphraseAsk::Known);
        assert_eq!(html.matches("type=\"password\"").count(), 0, "{html}");
    }

    #[test]
    fn an_enrolled_laptop_shows_its_relay_and_what_is_done_at_the_terminal() {
        let view = SettingsView {
            device_id: "d7k2m9p4q8r3s6t1".into(),
            team: Some("城关服务队".into()),
            relay: Some(RelayInfo {
                name: "县中继".into(),
                addr: "127.0.0.1:4433".into(),
                villages: vec!["V001".into(), "V002".into()],
            }),
            held: vec![("V001".into(), "<小河村>".into())],
            home: "/home/zw/.local/share/minqing".into(),
        };
        let html = settings_page(&ctx("2026-03-02"), &view);
        assert!(
            html.contains("县中继") && html.contains("127.0.0.1:4433"),
            "{html}"
        );
        assert!(html.contains("V001、V002"), "{html}");
        assert!(html.contains("&lt;小河村&gt;"), "{html}");
        assert!(html.contains("/home/zw/.local/share/minqing"), "{html}");
        for command in [
            "minqing passwd",
            "minqing backup",
            "minqing restore",
            "revoke --wipe",
        ] {
            assert!(html.contains(command), "{command} in {html}");
        }
        // No form that would change anything.
        assert!(!html.contains("<form"), "{html}");
    }

    #[test]
    fn a_standalone_laptop_says_how_to_join() {
        let view = SettingsView {
            device_id: "d7k2m9p4q8r3s6t1".into(),
            home: "/tmp/h".into(),
            ..SettingsView::default()
        };
        let html = settings_page(&ctx("2026-03-02"), &view);
        assert!(html.contains("未加入（单机使用）"), "{html}");
        // The upload form, without a passphrase: the home is unlocked.
        assert!(
            html.contains("action=\"/settings/enrol?csrf=tok123\""),
            "{html}"
        );
        assert_eq!(html.matches("type=\"password\"").count(), 0, "{html}");
    }
}
