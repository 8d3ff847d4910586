//! Exit codes: 0 ok, 2 for input the cadre must correct (usage), 1 for failures,
//! 4 for a wrong passphrase (3 is sync's: the relay refused this laptop).

use minqing_model::{IdError, ModelError, ValidationError};
use minqing_sync::DocIdError;

/// Exit code for usage errors: bad flags or values that fail their checks.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for failures: unknown ids, ambiguous prefixes, store errors.
pub const EXIT_FAILURE: u8 = 1;

/// A usage error found by the CLI itself (a missing or contradictory flag).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Builds an `anyhow::Error` for a usage mistake.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

fn is_usage_id_error(e: &IdError) -> bool {
    matches!(e, IdError::Malformed(_) | IdError::PrefixTooShort(_))
}

/// Picks the exit code for an error: usage if any error in the chain is a
/// value check that failed, failure otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let usage = err.chain().any(|e| {
        e.is::<Usage>()
            || e.is::<ValidationError>()
            || e.is::<DocIdError>()
            || e.downcast_ref::<IdError>().is_some_and(is_usage_id_error)
            || match e.downcast_ref::<ModelError>() {
                Some(ModelError::Invalid(_)) => true,
                Some(ModelError::Id(id)) => is_usage_id_error(id),
                _ => false,
            }
    });
    if err.chain().any(|e| e.is::<crate::home::Locked>()) {
        return crate::home::EXIT_LOCKED;
    }
    if usage { EXIT_USAGE } else { EXIT_FAILURE }
}

/// clap's message for a command line it refused, led by one line in Chinese
/// saying what kind of mistake it is (clap's own text, in English, follows:
/// it names the flag and shows the usage). Help and version pass unchanged.
pub fn render_clap(e: &clap::Error) -> String {
    use clap::error::ErrorKind as K;
    let text = e.render().to_string();
    if !e.use_stderr() {
        return text;
    }
    let what = match e.kind() {
        K::InvalidValue | K::ValueValidation | K::InvalidUtf8 => "参数的值不对",
        K::UnknownArgument => "没有这个参数（拼写？）",
        K::InvalidSubcommand => "没有这个命令（拼写？）",
        K::MissingRequiredArgument => "缺少必填的参数",
        K::MissingSubcommand | K::DisplayHelpOnMissingArgumentOrSubcommand => {
            "还要写出要做的事（子命令）"
        }
        K::ArgumentConflict => "这几个参数不能一起用",
        K::TooManyValues | K::TooFewValues | K::WrongNumberOfValues => "参数的个数不对",
        K::NoEquals => "参数要用 = 连着值写",
        _ => "命令写得不对",
    };
    format!(
        "错误：{what}。英文原文与用法如下；`minqing --help` 列出全部命令，在命令后加 --help 看它的参数。\n{text}"
    )
}
