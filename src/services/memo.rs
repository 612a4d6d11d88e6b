//! Values computed from something that changes as a whole — the inventory's version, the
//! second the gate judges at — kept while it stays the same and forgotten as soon as it moves.
//!
//! The gate judges bursts of checks about the same run (ADO asks once per stage, job and
//! retry; a deployment to many resources asks for each): the run's facts are the same until
//! the inventory changes, and the same input gives the same verdict within the same second.
//! A memo makes the second check of a burst cost a lookup instead of a store read and an
//! evaluation. Only exact keys match, so a memo never answers for anything it did not see.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Entries a memo holds at most unless told otherwise; past that it starts again (a burst is
/// a handful of runs, never thousands).
const CAPACITY: usize = 1_024;

pub struct Memo<V> {
    inner: Mutex<Entries<V>>,
    capacity: usize,
}

struct Entries<V> {
    generation: String,
    values: HashMap<String, Arc<V>>,
}

impl<V> Entries<V> {
    /// Ready to take an entry of `generation`: another generation's entries are dropped, and
    /// a full memo starts again.
    fn make_room(&mut self, generation: &str, capacity: usize) {
        if self.generation != generation || self.values.len() >= capacity {
            self.values.clear();
            generation.clone_into(&mut self.generation);
        }
    }
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl<V> Memo<V> {
    /// A memo of at most `capacity` entries (large values: fewer).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Entries {
                generation: String::new(),
                values: HashMap::new(),
            }),
            capacity: capacity.max(1),
        }
    }

    /// The value kept for `key` in `generation`, if any.
    pub fn get(&self, generation: &str, key: &str) -> Option<Arc<V>> {
        // A panic elsewhere while holding the lock leaves at worst a missing entry.
        let entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.generation != generation {
            return None;
        }
        entries.values.get(key).cloned()
    }

    /// The value kept for `key` in `generation`, or `make()` kept now: one value per key even
    /// when many ask at once (a cell to compute into makes a burst wait for one computation).
    pub fn get_or_insert_with(
        &self,
        generation: &str,
        key: &str,
        make: impl FnOnce() -> V,
    ) -> Arc<V> {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.generation == generation
            && let Some(kept) = entries.values.get(key)
        {
            return kept.clone();
        }
        entries.make_room(generation, self.capacity);
        let value = Arc::new(make());
        entries.values.insert(key.to_owned(), value.clone());
        value
    }

    /// Drop the entry for `key` in `generation` if it is still `value` (not one kept since).
    pub fn forget(&self, generation: &str, key: &str, value: &Arc<V>) {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.generation == generation
            && entries
                .values
                .get(key)
                .is_some_and(|kept| Arc::ptr_eq(kept, value))
        {
            entries.values.remove(key);
        }
    }

    /// Keep `value` for `key` in `generation`; entries of any other generation are dropped.
    pub fn put(&self, generation: &str, key: String, value: Arc<V>) {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        entries.make_room(generation, self.capacity);
        entries.values.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_kept_for_its_key_within_its_generation_only() {
        let memo: Memo<u32> = Memo::default();
        assert_eq!(memo.get("v1", "run 7"), None);
        memo.put("v1", "run 7".to_owned(), Arc::new(7));
        assert_eq!(memo.get("v1", "run 7").as_deref(), Some(&7));
        assert_eq!(memo.get("v1", "run 8"), None, "another key");
        assert_eq!(memo.get("v2", "run 7"), None, "another generation");
    }

    #[test]
    fn get_or_insert_makes_a_value_once_per_key_and_generation() {
        let memo: Memo<u32> = Memo::default();
        let mut made = 0;
        let mut make = |n| {
            made += 1;
            n
        };
        assert_eq!(*memo.get_or_insert_with("v1", "a", || make(1)), 1);
        assert_eq!(*memo.get_or_insert_with("v1", "a", || make(2)), 1, "kept");
        assert_eq!(
            *memo.get_or_insert_with("v2", "a", || make(3)),
            3,
            "new generation"
        );
        assert_eq!(memo.get("v1", "a"), None);
        assert_eq!(made, 2);
        let kept = memo.get("v2", "a").unwrap();
        memo.forget("v2", "a", &Arc::new(3));
        assert!(
            memo.get("v2", "a").is_some(),
            "another value of the same key stays"
        );
        memo.forget("v2", "a", &kept);
        assert_eq!(memo.get("v2", "a"), None);
    }

    #[test]
    fn a_new_generation_forgets_the_old_one() {
        let memo: Memo<u32> = Memo::default();
        memo.put("v1", "run 7".to_owned(), Arc::new(7));
        memo.put("v2", "run 8".to_owned(), Arc::new(8));
        assert_eq!(memo.get("v1", "run 7"), None);
        assert_eq!(memo.get("v2", "run 8").as_deref(), Some(&8));
    }

    #[test]
    fn a_full_memo_starts_again() {
        let memo: Memo<usize> = Memo::default();
        for n in 0..CAPACITY {
            memo.put("v1", n.to_string(), Arc::new(n));
        }
        assert_eq!(memo.get("v1", "0").as_deref(), Some(&0));
        memo.put("v1", "one more".to_owned(), Arc::new(0));
        assert_eq!(memo.get("v1", "0"), None);
        assert_eq!(memo.get("v1", "one more").as_deref(), Some(&0));

        let small: Memo<usize> = Memo::with_capacity(2);
        small.put("v1", "a".to_owned(), Arc::new(1));
        small.put("v1", "b".to_owned(), Arc::new(2));
        assert_eq!(small.get("v1", "a").as_deref(), Some(&1));
        small.put("v1", "c".to_owned(), Arc::new(3));
        assert_eq!(small.get("v1", "a"), None);
        assert_eq!(small.get("v1", "c").as_deref(), Some(&3));
    }
}
