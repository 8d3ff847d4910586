//! The key cache: a store's data key kept, after one unlock, in the kernel
//! keyring of the login session for an idle time, so that the next commands
//! of that login need neither the passphrase nor argon2id (docs/security.md,
//! "Unlocked once per login session (the key cache)").
//!
//! Linux only, through `linux-keyutils` (safe wrappers of `add_key` and
//! `keyctl`): a `user` key named `minqing:dk:<store id>` in the session
//! keyring, with rights for its possessor only and a timeout that every use
//! sets again. Elsewhere every call does nothing and nothing is cached.
//!
//! The cache never fails a command: whatever the kernel refuses reads as
//! "nothing cached", and nothing is printed. A cached key is used only if the
//! store's keyring accepts it ([`Keyring::verify`]); one it refuses is dropped.

use std::time::Duration;

use crate::crypt::DataKey;
use crate::keyring::Keyring;

/// Environment variable that turns the cache off for a process: `off`.
/// Unset or any other value: on.
pub const CACHE_ENV: &str = "MINQING_KEY_CACHE";
/// Environment variable with another idle time, in minutes (1–1440).
pub const MINUTES_ENV: &str = "MINQING_KEY_CACHE_MINUTES";
/// How long a cached key stays after its last use, unless [`MINUTES_ENV`] says otherwise.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(15 * 60);
/// Longest idle time [`MINUTES_ENV`] may set: a day.
const MAX_MINUTES: u64 = 24 * 60;

/// Whether, and for how long, this process keeps data keys in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Nothing is looked up or added (`MINQING_KEY_CACHE=off`).
    Off,
    /// Keys are looked up and added, and kept this long after their last use.
    Idle(Duration),
}

impl Policy {
    /// The policy this process's environment sets ([`CACHE_ENV`], [`MINUTES_ENV`]).
    pub fn from_env() -> Policy {
        Policy::parse(
            std::env::var(CACHE_ENV).ok().as_deref(),
            std::env::var(MINUTES_ENV).ok().as_deref(),
        )
    }

    /// The policy for these values of [`CACHE_ENV`] and [`MINUTES_ENV`]: a
    /// number of minutes outside 1–1440, or not a number, is ignored.
    pub fn parse(cache: Option<&str>, minutes: Option<&str>) -> Policy {
        if cache.map(str::trim) == Some("off") {
            return Policy::Off;
        }
        let minutes = minutes
            .and_then(|m| m.trim().parse::<u64>().ok())
            .filter(|m| (1..=MAX_MINUTES).contains(m));
        Policy::Idle(minutes.map_or(DEFAULT_IDLE, |m| Duration::from_secs(m * 60)))
    }
}

/// The kernel key's name for store `store_id`.
fn description(store_id: &str) -> String {
    format!("minqing:dk:{store_id}")
}

/// The cached data key of `ring`'s store, if one is cached and `ring`
/// accepts it; its idle time starts again. A cached key that `ring` refuses
/// is dropped. Follows this process's [`Policy`].
pub fn get(ring: &Keyring) -> Option<DataKey> {
    get_with(Policy::from_env(), ring)
}

/// [`get`] with a given policy.
pub fn get_with(policy: Policy, ring: &Keyring) -> Option<DataKey> {
    let Policy::Idle(idle) = policy else {
        return None;
    };
    let name = description(&ring.store_id);
    let cached = sys::lookup(&name)?;
    match sys::read(&cached) {
        Some(dk) if ring.verify(&dk) => {
            sys::set_idle(&cached, idle);
            Some(dk)
        }
        _ => {
            tracing::debug!("a cached data key does not open this store: dropped");
            drop_key(&ring.store_id);
            None
        }
    }
}

/// Caches `dk` as the data key of store `store_id` (replacing any key cached
/// for it). Follows this process's [`Policy`]; does nothing where the kernel
/// refuses.
pub fn put(store_id: &str, dk: &DataKey) {
    put_with(Policy::from_env(), store_id, dk);
}

/// [`put`] with a given policy; whether the key is now cached.
pub fn put_with(policy: Policy, store_id: &str, dk: &DataKey) -> bool {
    let Policy::Idle(idle) = policy else {
        return false;
    };
    sys::add(&description(store_id), dk, idle)
}

/// Drops the cached data key of store `store_id`, whatever the [`Policy`]
/// (`MINQING_KEY_CACHE=off` stops a process from using the cache, not from
/// emptying it); whether one was cached.
pub fn drop_key(store_id: &str) -> bool {
    // A match in a keyring linked below the session keyring is found too:
    // drop each, a bounded number of times (a key that cannot be dropped is
    // found again).
    let name = description(store_id);
    let mut dropped = false;
    for _ in 0..4 {
        let Some(cached) = sys::lookup(&name) else {
            break;
        };
        sys::remove(cached);
        dropped = true;
    }
    dropped
}

/// Whether a key is cached for store `store_id` (it is not read).
pub fn is_cached(store_id: &str) -> bool {
    sys::lookup(&description(store_id)).is_some()
}

/// Whether the kernel lets this process cache keys: a probe key is added to
/// the session keyring and removed again. `false` off Linux.
pub fn available() -> bool {
    sys::probe()
}

#[cfg(target_os = "linux")]
mod sys {
    //! The kernel keyring, through `linux-keyutils`.

    use std::time::Duration;

    use linux_keyutils::{Key, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};
    use zeroize::Zeroizing;

    use crate::crypt::{DataKey, KEY_LEN};

    /// A cached key found in the session keyring.
    pub struct Cached {
        ring: KeyRing,
        key: Key,
    }

    /// The login's session keyring. Without one, the kernel gives the
    /// per-user session keyring (never a new, process-private one:
    /// `create` is false).
    fn session() -> Option<KeyRing> {
        KeyRing::from_special_id(KeyRingIdentifier::Session, false).ok()
    }

    /// Whole seconds for the kernel's timeout, at least one.
    fn seconds(idle: Duration) -> usize {
        usize::try_from(idle.as_secs()).unwrap_or(usize::MAX).max(1)
    }

    pub fn lookup(name: &str) -> Option<Cached> {
        let ring = session()?;
        let key = ring.search(name).ok()?;
        Some(Cached { ring, key })
    }

    /// The key's payload as a data key; `None` unless it is exactly a key's length.
    pub fn read(cached: &Cached) -> Option<DataKey> {
        let mut buf = Zeroizing::new([0u8; 2 * KEY_LEN]);
        // The kernel returns the payload's whole length, copying what fits.
        let len = cached.key.read(&mut *buf).ok()?;
        DataKey::from_bytes(buf.get(..len)?)
    }

    pub fn set_idle(cached: &Cached, idle: Duration) {
        let _ = cached.key.set_timeout(seconds(idle));
    }

    /// The key's serial number (as `/proc/keys` shows it, in hex).
    #[cfg(test)]
    pub fn serial(cached: &Cached) -> u32 {
        cached.key.get_id().as_raw_id() as u32
    }

    pub fn remove(cached: Cached) {
        if cached.key.invalidate().is_err() {
            let _ = cached.ring.unlink_key(cached.key);
        }
    }

    /// What the possessor may do with a cached key; nobody else may do anything.
    fn possessor_only() -> linux_keyutils::KeyPermissions {
        KeyPermissionsBuilder::builder()
            .posessor(
                Permission::VIEW
                    | Permission::READ
                    | Permission::WRITE
                    | Permission::SEARCH
                    | Permission::SETATTR,
            )
            .build()
    }

    pub fn add(name: &str, dk: &DataKey, idle: Duration) -> bool {
        let Some(ring) = session() else {
            return false;
        };
        // The kernel copies the payload; no other copy of the key is made here.
        let Ok(key) = ring.add_key(name, &dk.as_bytes()[..]) else {
            return false;
        };
        // Until the permissions are set the key has the kernel's defaults
        // (the user may view its name and size, not read it). A key that
        // cannot get both its timeout and its permissions is not kept.
        if key.set_timeout(seconds(idle)).is_err() || key.set_perms(possessor_only()).is_err() {
            remove(Cached { ring, key });
            return false;
        }
        true
    }

    pub fn probe() -> bool {
        let Some(ring) = session() else {
            return false;
        };
        let name = format!("minqing:probe:{}", std::process::id());
        match ring.add_key(&name, b"probe") {
            Ok(key) => {
                remove(Cached { ring, key });
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    //! No kernel keyring: nothing is ever cached.

    use std::time::Duration;

    use crate::crypt::DataKey;

    /// A cached key: there are none.
    pub enum Cached {}

    pub fn lookup(_name: &str) -> Option<Cached> {
        None
    }

    pub fn read(cached: &Cached) -> Option<DataKey> {
        match *cached {}
    }

    pub fn set_idle(cached: &Cached, _idle: Duration) {
        match *cached {}
    }

    pub fn remove(cached: Cached) {
        match cached {}
    }

    pub fn add(_name: &str, _dk: &DataKey, _idle: Duration) -> bool {
        false
    }

    pub fn probe() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::KdfParams;
    use crate::secret::Passphrase;

    const ON: Policy = Policy::Idle(DEFAULT_IDLE);

    /// A keyring of its own (a random store id, so tests running at the same
    /// time in the same session keyring never meet), its data key, and a guard
    /// that drops whatever a failed test left cached for it.
    fn store() -> (Keyring, DataKey, Cleanup) {
        let (ring, dk) = Keyring::create(
            &Passphrase::new("key cache test"),
            KdfParams::TEST_ONLY_WEAK,
            None,
            None,
        )
        .unwrap();
        let cleanup = Cleanup(ring.store_id.clone());
        (ring, dk, cleanup)
    }

    struct Cleanup(String);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            drop_key(&self.0);
        }
    }

    /// Whether the kernel keyring can be used here; says so when it cannot.
    fn kernel_keyring() -> bool {
        let ok = available();
        if !ok {
            eprintln!("skipped: kernel keyring unavailable");
        }
        ok
    }

    #[test]
    fn the_environment_sets_the_policy() {
        let min = |m: u64| Policy::Idle(Duration::from_secs(m * 60));
        assert_eq!(Policy::parse(None, None), ON);
        assert_eq!(Policy::parse(Some("off"), Some("5")), Policy::Off);
        assert_eq!(Policy::parse(Some("on"), None), ON);
        assert_eq!(Policy::parse(None, Some("1")), min(1));
        assert_eq!(Policy::parse(None, Some(" 90 ")), min(90));
        assert_eq!(Policy::parse(None, Some("1440")), min(1440));
        for ignored in ["0", "1441", "-3", "15m", ""] {
            assert_eq!(Policy::parse(None, Some(ignored)), ON, "{ignored:?}");
        }
    }

    #[test]
    #[cfg(target_os = "linux")] // reads /proc/keys
    fn a_put_key_is_found_possessor_only_with_a_timeout_and_dropped() {
        if !kernel_keyring() {
            return;
        }
        let (ring, dk, _cleanup) = store();
        assert!(get_with(ON, &ring).is_none());
        assert!(put_with(ON, &ring.store_id, &dk));
        let got = get_with(ON, &ring).expect("the key just put");
        assert_eq!(got.as_bytes(), dk.as_bytes());

        // Rights for the possessor only (view, read, write, search, setattr),
        // and a timeout: /proc/keys shows the key with both.
        let cached = sys::lookup(&description(&ring.store_id)).unwrap();
        let serial = format!("{:08x}", sys::serial(&cached));
        let keys = std::fs::read_to_string("/proc/keys").unwrap();
        let line = keys
            .lines()
            .find(|l| l.starts_with(&serial))
            .unwrap_or_else(|| panic!("{serial} not in /proc/keys:\n{keys}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[4], "2f000000", "{line}");
        assert_ne!(cols[3], "perm", "no timeout: {line}");

        assert!(drop_key(&ring.store_id));
        assert!(!is_cached(&ring.store_id));
        assert!(get_with(ON, &ring).is_none());
        assert!(!drop_key(&ring.store_id), "nothing left to drop");
    }

    #[test]
    fn a_cached_key_the_keyring_refuses_is_not_used_and_is_dropped() {
        if !kernel_keyring() {
            return;
        }
        let (ring, _dk, _cleanup) = store();
        // Another store's key under this store's name (a planted key, or
        // one left from a keyring since replaced).
        let (_, other, _) = store();
        assert!(put_with(ON, &ring.store_id, &other));
        assert!(get_with(ON, &ring).is_none());
        assert!(!is_cached(&ring.store_id), "the refused key was dropped");
    }

    #[test]
    fn with_the_cache_off_nothing_is_added_or_used_but_a_drop_still_drops() {
        if !kernel_keyring() {
            return;
        }
        let (ring, dk, _cleanup) = store();
        assert!(!put_with(Policy::Off, &ring.store_id, &dk));
        assert!(!is_cached(&ring.store_id));
        assert!(put_with(ON, &ring.store_id, &dk));
        assert!(get_with(Policy::Off, &ring).is_none());
        assert!(is_cached(&ring.store_id), "an Off lookup leaves it");
        assert!(drop_key(&ring.store_id));
        assert!(!is_cached(&ring.store_id));
    }
}
