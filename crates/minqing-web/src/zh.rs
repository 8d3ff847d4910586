//! Chinese for what the model and the `minqing` command line say in English,
//! at the edge where a page shows it. The model and the CLI keep their words
//! (scripts, tests and the county's IT staff read those); a page never shows
//! them bare.
//!
//! - Typed errors are mapped by variant ([`validation`]): a new variant of
//!   `ValidationError` does not compile until it has its Chinese.
//! - Text that reaches the app as words (a command's stderr, a network or
//!   enrolment failure, an error chain) is mapped by its fixed phrases
//!   ([`message`]).
//! - Text with no mapping is shown after a Chinese lead, in its own words,
//!   so that nothing is hidden from the IT staff who may be asked.

use minqing_model::ValidationError;

/// A field name the model uses in its messages, in Chinese.
fn field(name: &str) -> &str {
    match name {
        "name" => "姓名",
        "place name" => "名称",
        "address" => "住址",
        "household number" => "户号",
        "relation" => "与户主关系",
        "visit note" => "走访记录",
        "demand category" => "诉求类别",
        "demand text" => "诉求内容",
        "team name" => "服务队名称",
        "tag" => "人员类别",
        "birth date" | "出生日期" => "出生日期",
        "visit date" => "走访日期",
        "date" => "日期",
        "note" => "说明",
        other => other,
    }
}

fn birth_why(why: &str) -> &str {
    match why {
        "not a real date" => "不是真实的日期",
        "in the future" => "晚于今天",
        "before 1900" => "早于1900年",
        other => other,
    }
}

/// A value the model refused, in Chinese, saying what to fix.
pub fn validation(e: &ValidationError) -> String {
    use ValidationError as V;
    match e {
        V::IdCardLength { len, .. } => format!(
            "身份证号有 {len} 位：应为 18 位（17 位数字加一位校验码 0-9 或 X），或一代证的 15 位数字。"
        ),
        V::IdCardChars { .. } => "身份证号只能是数字，最后一位可以是 X。".into(),
        V::IdCardCheckDigit { expected, got } => format!(
            "身份证号校验位不对：按前17位应为 {expected}，填的是 {got}。请对照身份证核对。"
        ),
        V::IdCardRegion { code } => {
            format!("身份证号前两位 {code} 不是省份代码（11-91）：请核对前两位。")
        }
        V::IdCardArea { code } => {
            format!("身份证号前六位 {code} 不是行政区划代码：请对照身份证核对前六位。")
        }
        V::IdCardBirth { digits, why } => format!(
            "身份证号里的出生日期 {digits}（第7-14位）{}：请对照身份证核对。",
            birth_why(why)
        ),
        V::BirthMismatch { from_card, given } => format!(
            "出生日期 {given} 与身份证号不一致（身份证号上是 {from_card}）：请改正其中一个。"
        ),
        V::GenderMismatch { from_card, given } => format!(
            "性别“{given}”与身份证号不一致（身份证号第17位表示“{from_card}”）：请改正其中一个。"
        ),
        V::Phone { .. } => "电话号码不对：请填 11 位手机号（13-19 开头，如 13800138000），或带区号的座机（如 0537-1234567）。".into(),
        V::Gender { .. } => "性别请填“男”或“女”。".into(),
        V::VisitKind { .. } => "走访类型请选：普遍走访、重点走访或补访。".into(),
        V::Date { .. } => "日期格式不对：请写成 年-月-日，如 2026-03-01。".into(),
        V::Month { .. } => "月份格式不对：请写成 年-月，如 2026-03。".into(),
        V::FutureDate { field: f, date, today } => {
            format!("{} {date} 晚于今天（{today}）：请核对日期。", field(f))
        }
        V::Empty { field: f, .. } => format!("{}不能为空。", field(f)),
        V::TooLong { field: f, len, max } => {
            format!("{}有 {len} 个字，最多 {max} 个：请删短一些。", field(f))
        }
        V::ControlChar { field: f } => format!("{}里有控制字符：请删掉。", field(f)),
        V::InvisibleChar { field: f, code } => format!(
            "{}里有看不见的字符 U+{code:04X}，会改变文字的显示：请删掉。",
            field(f)
        ),
    }
}

/// Fixed phrases of English messages and their Chinese, most specific
/// first. Each names what happened and what the cadre can do.
const PHRASES: &[(&str, &str)] = &[
    // Enrolment (设置): the bundle and the first contact.
    (
        "already used on another laptop",
        "这个登记文件已经在另一台电脑上用过了，不能再用：请向县里（中继管理员）要一个新的登记文件。本机没有做任何更改。",
    ),
    (
        "does not know this enrolment file",
        "县里的中继不认识这个登记文件：请向县里（中继管理员）要一个新的登记文件。",
    ),
    (
        "refused this laptop's certificate",
        "县里的中继不接受这台电脑（已被停用，或没有在这个中继登记）：请联系县里（中继管理员）重新登记。",
    ),
    (
        "is not the relay this laptop was enrolled with",
        "连上的不是这台电脑登记的县中继，什么也没有发出：请核对中继地址，或向县里要一个新的登记文件。",
    ),
    (
        "carries a private key",
        "这个登记文件来自旧版本的中继：请向县里要一个新的登记文件。",
    ),
    (
        "enrolment secret is missing or damaged",
        "登记文件已损坏：请向县里要一个新的登记文件。",
    ),
    (
        "too large for a bundle",
        "这个文件太大，不是民情日记的登记文件：请选择县里发的登记文件。",
    ),
    (
        "not a minqing enrolment bundle",
        "这不是民情日记的登记文件：请选择县里发的登记文件。",
    ),
    (
        "enrolment bundle",
        "登记文件有误：请向县里要一个新的登记文件。",
    ),
    (
        "cannot record enrolments right now",
        "县里的中继现在无法登记：请稍后再试。",
    ),
    (
        "cannot read its registry right now",
        "县里的中继现在无法登记：请稍后再试。",
    ),
    (
        "this enrolment file is for device",
        "这个登记文件是给另一台电脑做的，不是本机的：请县里按本机的设备号（见本页）重新做登记文件。没有做任何更改。",
    ),
    (
        "is already enrolled with relay",
        "本机已经加入县里的中继，没有做任何更改。",
    ),
    ("is already set up", "本机已经设置过了，没有做任何更改。"),
    (
        "enrolment with relay",
        "登记没有完成：连不上县里的中继。本机已记下这次登记，联网后再点一次“登记本机”（用同一个登记文件）。",
    ),
    // The passphrase.
    (
        "a passphrase needs at least",
        "密码太短：至少要 8 个字符。没有做任何更改。",
    ),
    (
        "the two entries of the new passphrase differ",
        "两次输入的密码不一样，没有做任何更改：请重新输入。",
    ),
    (
        "wrong passphrase",
        "密码不对，没有做任何更改。连续输错后要等一会儿才能再试。",
    ),
    // The network and the relay.
    (
        "ordered this laptop to be wiped",
        "县里已下令清除这台电脑上的数据。",
    ),
    (
        "was wiped on the relay operator's order",
        "这台电脑上的数据已按县里的命令清除，无法再读取。",
    ),
    (
        "is unreachable",
        "连不上县里的中继（可能没有网络）：记录都保存在本机，联网后会自动同步。",
    ),
    (
        "the connection to the relay broke",
        "与县里中继的连接断了：记录都保存在本机，下次同步时会一起上传。",
    ),
    ("the relay is busy", "县里的中继正忙：稍后会自动再试。"),
    // The store.
    ("disk full", "磁盘已满，这次没有保存：请腾出空间后再试。"),
    (
        "cannot be written (read-only)",
        "数据所在的磁盘只能读不能写，这次没有保存。",
    ),
    // The model (the part a page shows after "没有保存：").
    ("is not a record id", "不是有效的记录编号：请从列表里选择。"),
    (
        "is not known: use 满意",
        "满意度请选：满意、基本满意或不满意。",
    ),
    (
        "is already taken; run the command again",
        "编号碰巧重复了，没有保存：请再试一次。",
    ),
    (
        "already has a leave for",
        "这个月已经记过请假了，不用再记。",
    ),
    (
        "does not belong to household",
        "这位居民不属于这一户：请重新选择。",
    ),
    (
        "cannot merge resident",
        "不能把一位居民合并到他自己：请选两位不同的居民。",
    ),
];

/// The English of a `ValidationError` (as an import's rejected row carries
/// it, in words) and its Chinese, for [`import_reason`]. The variant-by-variant
/// mapping is [`validation`]; these are its fixed phrases.
const VALUE_PHRASES: &[(&str, &str)] = &[
    (
        "characters: it must have 18",
        "位数不对：应为 18 位（17 位数字加一位校验码 0-9 或 X），或一代证的 15 位数字",
    ),
    ("may contain only digits", "只能是数字，最后一位可以是 X"),
    ("check digit is wrong", "校验位不对：请对照身份证核对"),
    ("is not a province code", "前两位不是省份代码：请核对前两位"),
    (
        "is not an administrative division code",
        "前六位不是行政区划代码：请对照身份证核对",
    ),
    ("(digits 7-14)", "里的出生日期不对：请对照身份证核对"),
    (
        "is not a phone number",
        "不是电话号码：请填 11 位手机号或带区号的座机（如 0537-1234567）",
    ),
    ("is not known: use 男 or 女", "请填“男”或“女”"),
    (
        "is not a date",
        "日期格式不对：请写成 年-月-日，如 2026-03-01",
    ),
    ("is in the future", "晚于今天：请核对日期"),
    (
        "every resident needs a household address",
        "为空：每位居民都要有住址",
    ),
    ("is empty", "为空"),
    ("characters long; at most", "太长：请删短一些"),
    ("contains a control character", "里有控制字符：请删掉"),
    (
        "contains the invisible character",
        "里有看不见的字符：请删掉",
    ),
    (
        "disagrees with the 身份证号",
        "与身份证号不一致：请改正其中一个",
    ),
];

/// The row number at the end of "… on row N".
fn row_of(text: &str) -> Option<&str> {
    let n = text.rsplit("on row ").next()?.trim();
    (!n.is_empty() && n.chars().all(|c| c.is_ascii_digit())).then_some(n)
}

/// Why an import rejected a row (the model's words, "身份证号: …"), in
/// Chinese: "身份证号：校验位不对…". A reason with no mapping is kept as the
/// model gave it, after a Chinese lead.
pub fn import_reason(reason: &str) -> String {
    if reason.contains("without a 身份证号 already appears in this household") {
        return match row_of(reason) {
            Some(n) => format!("这一户里已有同名、没有身份证号的人（第{n}行）：核对是否重复"),
            None => "这一户里已有同名、没有身份证号的人：核对是否重复".into(),
        };
    }
    if reason.contains("already appears on row") {
        return match row_of(reason) {
            Some(n) => format!("身份证号与第{n}行重复"),
            None => "身份证号在表格里重复".into(),
        };
    }
    // "列名: 说明" or "列名 值 说明" (the column is the Chinese header).
    let (column, rest) = match reason.split_once(": ") {
        Some((c, r)) if !c.is_ascii() && !c.contains(' ') => (c, r),
        _ => match reason.split_once(' ') {
            Some((c, r)) if !c.is_ascii() => (c, r),
            _ => ("", reason),
        },
    };
    for (phrase, zh) in VALUE_PHRASES {
        if rest.contains(phrase) {
            return format!("{column}{zh}");
        }
    }
    if !has_latin_words(reason) {
        return reason.to_owned();
    }
    format!("原因（原文）：{reason}")
}

/// An English message from the model, the CLI or the network, in Chinese:
/// the first fixed phrase it contains decides. A message with none is
/// given after a Chinese lead, in its own words.
pub fn message(text: &str) -> String {
    let text = text.trim();
    let text = text.strip_prefix("error: ").unwrap_or(text);
    for (phrase, zh) in PHRASES {
        if text.contains(phrase) {
            return (*zh).to_owned();
        }
    }
    if !has_latin_words(text) {
        // Already Chinese (a page's own words, a form's check).
        return text.to_owned();
    }
    format!("出错了（原文如下，可以告诉县里的技术人员）：{text}")
}

/// Whether `text` holds an English word of three letters or more (ids,
/// commands and figures aside, a Chinese message has none).
fn has_latin_words(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_lowercase()))
}

/// The model's typed errors a page meets, by variant. (Their wrappers are
/// `#[error(transparent)]`, so the inner error is not a separate link of
/// the chain: it is looked for inside.)
fn typed(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use minqing_model::{DutyError, ModelError, WorkflowError};
    if let Some(v) = err.downcast_ref::<ValidationError>() {
        return Some(validation(v));
    }
    if let Some(WorkflowError::Refused { kind, .. }) = err.downcast_ref::<WorkflowError>() {
        return Some(format!(
            "“{kind}”这一步现在不能做：这条诉求的状态已经变了（可能刚同步来同事的办理），请看办理过程后再操作。"
        ));
    }
    let model = err
        .downcast_ref::<ModelError>()
        .or_else(|| match err.downcast_ref::<DutyError>() {
            Some(DutyError::Model(m)) => Some(m),
            _ => None,
        })
        .or_else(|| match err.downcast_ref::<WorkflowError>() {
            Some(WorkflowError::Model(m)) => Some(m),
            _ => None,
        });
    match model {
        Some(ModelError::Invalid(v)) => Some(validation(v)),
        _ => None,
    }
}

/// An error and its causes, in Chinese: the first `ValidationError` in the
/// chain is mapped by variant; otherwise the whole chain's words by
/// [`message`].
pub fn error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(zh) = typed(err) {
            return zh;
        }
        cur = err.source();
    }
    let mut words = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        words.push_str(": ");
        words.push_str(&err.to_string());
        cur = err.source();
    }
    message(&words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use minqing_model::validate::{Gender, IdCardNumber, Phone};

    /// Whether a sentence is Chinese for a cadre: no English word left
    /// (ids, figures and the Latin letters of a 身份证号 aside).
    fn chinese(s: &str) -> bool {
        !has_latin_words(s) && s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    }

    #[test]
    fn every_refusal_of_the_model_has_its_chinese() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let refused: Vec<ValidationError> = vec![
            IdCardNumber::parse("12345", today).unwrap_err(),
            IdCardNumber::parse("11010519491231002A", today).unwrap_err(),
            IdCardNumber::parse("110105194912310021", today).unwrap_err(),
            Phone::parse("12").unwrap_err(),
            Gender::parse("x").unwrap_err(),
            minqing_model::PersonName::parse("").unwrap_err(),
            minqing_model::PersonName::parse(&"长".repeat(60)).unwrap_err(),
            minqing_model::PersonName::parse("a\u{202e}b").unwrap_err(),
        ];
        for e in &refused {
            let english = e.to_string();
            let zh = validation(e);
            assert!(has_latin_words(&english), "{english}");
            assert!(chinese(&zh), "{english} → {zh}");
        }
        let check_digit = validation(&refused[2]);
        assert!(check_digit.contains("校验位"), "{check_digit}");
        assert!(validation(&refused[5]).contains("姓名不能为空"));
        assert!(validation(&refused[6]).contains("最多 50 个"));
    }

    #[test]
    fn the_cli_and_the_network_say_it_in_chinese() {
        for (english, want) in [
            (
                "error: this enrolment file was already used on another laptop; ask the operator for a new one",
                "已经在另一台电脑上用过了",
            ),
            (
                "enrolment with relay 县中继 failed: the relay at 127.0.0.1:4433 is unreachable (timed out); nothing local was lost, try again when the network is back; nothing is half set up: run the same command again when the relay is reachable",
                "登记没有完成",
            ),
            (
                "the relay at 127.0.0.1:4433 is unreachable (timed out); nothing local was lost, try again when the network is back",
                "连不上县里的中继",
            ),
            (
                "enrolment bundle 登记.txt: not a minqing enrolment bundle (expected value at line 1 column 1)",
                "不是民情日记的登记文件",
            ),
            (
                "a passphrase needs at least 8 characters; nothing was changed",
                "密码太短",
            ),
            (
                "disk full: this visit was not saved — free space and run the command again",
                "磁盘已满",
            ),
        ] {
            let zh = message(english);
            assert!(zh.contains(want), "{english} → {zh}");
            assert!(chinese(&zh), "{english} → {zh}");
        }
    }

    #[test]
    fn an_import_s_rejected_rows_say_why_in_chinese() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let card = IdCardNumber::parse("110105194912310021", today).unwrap_err();
        for (reason, want) in [
            (
                format!("身份证号: {card}"),
                "身份证号校验位不对：请对照身份证核对".to_owned(),
            ),
            (
                "身份证号 110105194912310029 already appears on row 4".to_owned(),
                "身份证号与第4行重复".to_owned(),
            ),
            (
                "姓名 王芳 without a 身份证号 already appears in this household on row 7"
                    .to_owned(),
                "这一户里已有同名、没有身份证号的人（第7行）：核对是否重复".to_owned(),
            ),
            (
                "住址 is empty: every resident needs a household address (住址 / 家庭住址)"
                    .to_owned(),
                "住址为空：每位居民都要有住址".to_owned(),
            ),
            (
                format!("联系电话: {}", Phone::parse("12").unwrap_err()),
                "联系电话不是电话号码：请填 11 位手机号或带区号的座机（如 0537-1234567）"
                    .to_owned(),
            ),
            (
                "性别 男 disagrees with the 身份证号, whose 17th digit says 女: fix one of them"
                    .to_owned(),
                "性别与身份证号不一致：请改正其中一个".to_owned(),
            ),
        ] {
            assert_eq!(import_reason(&reason), want, "{reason}");
        }
        let odd = import_reason("something new");
        assert!(
            odd.contains("something new") && odd.starts_with("原因"),
            "{odd}"
        );
    }

    #[test]
    fn chinese_stays_and_the_unknown_is_shown_with_a_chinese_lead() {
        assert_eq!(
            message("请选择县里发的登记文件。"),
            "请选择县里发的登记文件。"
        );
        let odd = message("something nobody foresaw");
        assert!(odd.starts_with("出错了"), "{odd}");
        assert!(odd.contains("something nobody foresaw"), "{odd}");
    }

    #[test]
    fn an_error_chain_maps_its_validation_error_by_variant() {
        #[derive(Debug)]
        struct Wrap(ValidationError);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("cannot add the resident")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(Phone::parse("12").unwrap_err());
        assert!(error(&e).starts_with("电话号码不对"), "{}", error(&e));
    }
}
