//! Locks that never carry on after a panic: a mutex poisoned by a panic while
//! it was held may hold half-updated state, so its value is thrown away and
//! rebuilt (reloaded from disk, or reset to what a fresh relay would have)
//! before anyone uses it again — never read as it was left.

use std::sync::{LockResult, Mutex, MutexGuard, PoisonError};

/// Locks `m`; if a panic poisoned it, replaces its value with `reload()`
/// (logged) and clears the poison.
pub(crate) fn lock_or_reload<'a, T>(
    m: &'a Mutex<T>,
    what: &str,
    reload: impl FnOnce() -> T,
) -> MutexGuard<'a, T> {
    recover(m, m.lock(), what, reload)
}

/// Like [`lock_or_reload`] for a guard handed back by a `Condvar` wait.
pub(crate) fn recover<'a, T>(
    m: &'a Mutex<T>,
    result: LockResult<MutexGuard<'a, T>>,
    what: &str,
    reload: impl FnOnce() -> T,
) -> MutexGuard<'a, T> {
    result.unwrap_or_else(|poisoned: PoisonError<MutexGuard<'a, T>>| {
        tracing::error!("{what}: a panic left it possibly half-updated; rebuilt, not reused");
        let mut guard = poisoned.into_inner();
        *guard = reload();
        m.clear_poison();
        guard
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_value_is_replaced_not_reused() {
        let m = Mutex::new(vec![1, 2, 3]);
        let _ = std::panic::catch_unwind(|| {
            let mut g = m.lock().expect("not poisoned yet");
            g.push(4);
            panic!("half-way");
        });
        assert!(m.is_poisoned());
        let g = lock_or_reload(&m, "test", Vec::new);
        assert!(g.is_empty(), "the torn value is gone");
        drop(g);
        assert!(!m.is_poisoned());
        assert_eq!(*lock_or_reload(&m, "test", || vec![9]), Vec::<i32>::new());
    }
}
