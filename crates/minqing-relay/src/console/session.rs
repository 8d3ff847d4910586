//! Console sessions (random token cookie, idle and absolute expiry, a bound
//! on how many) and the login throttle (docs/console.md).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lock::lock_or_reload;

/// Sessions kept at once; beyond, the least recently used one ends.
pub const MAX_SESSIONS: usize = 1000;
/// A session ends this long after login, whatever its use.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Consecutive failed logins of one name after which each try waits.
pub const FREE_FAILURES: u32 = 10;
/// The wait after the [`FREE_FAILURES`]th failure; it doubles with each further one.
pub const FIRST_WAIT: Duration = Duration::from_secs(5);
/// Longest wait between tries of a name being guessed.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Login names whose failures are remembered at once (the oldest are forgotten).
const MAX_THROTTLED: usize = 10_000;

/// A random secret: 32 bytes as 64 hex digits.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One logged-in session.
#[derive(Clone, Debug)]
pub struct Session {
    /// The account's login name.
    pub account: String,
    /// The token every form of this session carries.
    pub csrf: String,
    created: Instant,
    last: Instant,
}

/// Every session, by cookie token.
#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    map: Mutex<BTreeMap<String, Session>>,
}

/// Why a cookie names no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// No such session (never, or logged out, or the relay restarted).
    Unknown,
    /// Idle too long, or older than [`ABSOLUTE`].
    Expired,
}

impl Sessions {
    /// Sessions that end after `idle` without a request.
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            map: Mutex::new(BTreeMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Session>> {
        // Poisoned: everyone logs in again.
        lock_or_reload(&self.map, "the console sessions", BTreeMap::new)
    }

    /// Starts a session for `account`; returns its cookie token.
    pub fn start(&self, account: &str) -> String {
        let now = Instant::now();
        let token = new_token();
        let mut map = self.map();
        map.retain(|_, s| !self.stale(s, now));
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(t, _)| t.clone());
            match oldest {
                Some(t) => map.remove(&t),
                None => break,
            };
        }
        map.insert(
            token.clone(),
            Session {
                account: account.to_owned(),
                csrf: new_token(),
                created: now,
                last: now,
            },
        );
        token
    }

    fn stale(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last) > self.idle || now.duration_since(s.created) > ABSOLUTE
    }

    /// The session of `token`, marked used; an expired one is ended.
    pub fn touch(&self, token: &str) -> Result<Session, Expired> {
        let now = Instant::now();
        let mut map = self.map();
        let found = map
            .iter()
            .find(|(t, _)| same_secret(t, token))
            .map(|(t, _)| t.clone());
        let Some(key) = found else {
            return Err(Expired::Unknown);
        };
        let stale = map.get(&key).is_some_and(|s| self.stale(s, now));
        if stale {
            map.remove(&key);
            return Err(Expired::Expired);
        }
        let s = map.get_mut(&key).ok_or(Expired::Unknown)?;
        s.last = now;
        Ok(s.clone())
    }

    /// Ends the session of `token`.
    pub fn end(&self, token: &str) {
        self.map().retain(|t, _| !same_secret(t, token));
    }

    /// Ends every session of `account` (disabled, password changed).
    pub fn end_account(&self, account: &str) {
        self.map().retain(|_, s| s.account != account);
    }
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    until: Option<Instant>,
    last: Instant,
}

/// Failed logins per login name (docs/console.md, "throttling").
#[derive(Debug, Default)]
pub struct Throttle {
    map: Mutex<BTreeMap<String, Failures>>,
}

impl Throttle {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Failures>> {
        lock_or_reload(&self.map, "the login throttle", BTreeMap::new)
    }

    /// `Err(wait)` if `name` must wait before its next try.
    pub fn check(&self, name: &str) -> Result<(), Duration> {
        let now = Instant::now();
        match self.map().get(name).and_then(|f| f.until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failed try of `name`; returns how many in a row.
    pub fn failed(&self, name: &str) -> u32 {
        let now = Instant::now();
        let mut map = self.map();
        if map.len() >= MAX_THROTTLED && !map.contains_key(name) {
            let oldest = map
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(n, _)| n.clone());
            if let Some(n) = oldest {
                map.remove(&n);
            }
        }
        let f = map.entry(name.to_owned()).or_insert(Failures {
            count: 0,
            until: None,
            last: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count >= FREE_FAILURES {
            let exp = (f.count - FREE_FAILURES).min(20);
            let wait = FIRST_WAIT.saturating_mul(1u32 << exp).min(MAX_WAIT);
            f.until = Some(now + wait);
        }
        f.count
    }

    /// A successful login: the count starts again.
    pub fn succeeded(&self, name: &str) {
        self.map().remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenth_failure_makes_the_next_try_wait() {
        let t = Throttle::default();
        for i in 1..FREE_FAILURES {
            assert_eq!(t.failed("shuiwu"), i);
            assert!(t.check("shuiwu").is_ok(), "free try {i}");
        }
        t.failed("shuiwu");
        let wait = t.check("shuiwu").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= FIRST_WAIT);
        t.failed("shuiwu");
        let longer = t.check("shuiwu").unwrap_err();
        assert!(longer > FIRST_WAIT, "the wait doubles: {longer:?}");
        assert!(t.check("other").is_ok(), "per name");
        t.succeeded("shuiwu");
        assert!(t.check("shuiwu").is_ok());
    }

    #[test]
    fn sessions_end_when_idle_or_logged_out() {
        let s = Sessions::new(Duration::ZERO);
        let token = s.start("a");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.touch(&token).unwrap_err(), Expired::Expired);
        assert_eq!(s.touch(&token).unwrap_err(), Expired::Unknown);
        let s = Sessions::new(Duration::from_secs(60));
        let token = s.start("a");
        let first = s.touch(&token).unwrap();
        assert_eq!(first.account, "a");
        assert_eq!(first.csrf.len(), 64);
        s.end_account("a");
        assert_eq!(s.touch(&token).unwrap_err(), Expired::Unknown);
    }
}
