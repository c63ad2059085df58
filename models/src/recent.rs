//! [`Recent`]: a bounded map of recently used entries that threads share,
//! for what the node remembers to avoid repeating work (parsed keys and
//! documents, found personas, verified timestamps, issued receipts). When
//! full, the least recently used entry goes first.

use lru::LruCache;
use std::borrow::Borrow;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};

pub struct Recent<K: Hash + Eq, V>(Mutex<LruCache<K, V>>);

impl<K: Hash + Eq, V> Recent<K, V> {
    /// A map of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self(Mutex::new(LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN))))
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<K, V>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the value of `key`, if kept.
    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        V: Clone,
    {
        self.lock().get(key).cloned()
    }

    /// The values of `keys`, in order, under one lock.
    pub fn get_all<'a, Q: Hash + Eq + ?Sized + 'a>(&self, keys: impl IntoIterator<Item = &'a Q>) -> Vec<Option<V>>
    where
        K: Borrow<Q>,
        V: Clone,
    {
        let mut map = self.lock();
        keys.into_iter().map(|key| map.get(key).cloned()).collect()
    }

    pub fn contains<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.lock().get(key).is_some()
    }

    pub fn put(&self, key: K, value: V) {
        self.lock().put(key, value);
    }

    /// Keeps every entry of `entries`, under one lock.
    pub fn put_all(&self, entries: impl IntoIterator<Item = (K, V)>) {
        let mut map = self.lock();
        for (key, value) in entries {
            map.put(key, value);
        }
    }

    /// Removes `key` and returns its value.
    pub fn take<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.lock().pop(key)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_goes_first_and_a_taken_one_is_gone() {
        let recent: Recent<String, u32> = Recent::new(2);
        recent.put("a".into(), 1);
        recent.put_all([("b".into(), 2)]);
        assert_eq!(recent.get("a"), Some(1), "a is now the most recent");
        recent.put("c".into(), 3);
        assert_eq!(recent.get_all(["a", "b", "c"]), [Some(1), None, Some(3)]);
        assert!(recent.contains("c"));
        assert_eq!(recent.take("a"), Some(1));
        assert_eq!((recent.take("a"), recent.len()), (None, 1));
    }
}
