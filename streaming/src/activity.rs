//! Session activity written behind (video units are not counted here: each is reserved in the
//! database before it is served, see `monitor::reserve_unit`; what remains is the idle clock of
//! manifest, init and audio fetches): kept in memory and
//! written to the database at most once a second per session (the first request of a session
//! is written at once, so `keyed` becomes `streaming` immediately). One UPDATE per segment
//! serialised every request behind SQLite's single writer; this keeps the database writes per
//! session bounded while reads of this instance still see exact counts ([`Activity::pending`]).
//! What a crash can lose is at most one second of counts per session.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Above this many tracked sessions, idle entries are dropped on the next note.
const SOFT_CAP: usize = 50_000;
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub struct Activity {
    sessions: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    pending: i64,
    flushed_at: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Activity {
    /// Notes `segments` more for session `id`. Returns the count to write now when the session
    /// is due (never written, or last written over a second ago); the caller writes it.
    pub fn note(&self, id: &str, segments: i64) -> Option<i64> {
        let now = Instant::now();
        let mut map = lock(&self.sessions);
        if map.len() >= SOFT_CAP {
            map.retain(|_, e| {
                e.pending > 0 || e.flushed_at.is_some_and(|t| now - t < FORGET_AFTER)
            });
        }
        let e = map.entry(id.to_string()).or_insert(Entry {
            pending: 0,
            flushed_at: None,
        });
        e.pending += segments;
        let due = e.flushed_at.is_none_or_elapsed(now);
        if !due {
            return None;
        }
        e.flushed_at = Some(now);
        Some(std::mem::take(&mut e.pending))
    }

    /// Gives back a count whose write failed, so that it is written with the next one.
    pub fn restore(&self, id: &str, segments: i64) {
        if let Some(e) = lock(&self.sessions).get_mut(id) {
            e.pending += segments;
            e.flushed_at = None;
        }
    }

    /// Segments counted here but not yet in the database.
    pub fn pending(&self, id: &str) -> i64 {
        lock(&self.sessions).get(id).map_or(0, |e| e.pending)
    }

    pub fn forget(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }
}

trait Due {
    fn is_none_or_elapsed(&self, now: Instant) -> bool;
}

impl Due for Option<Instant> {
    fn is_none_or_elapsed(&self, now: Instant) -> bool {
        match self {
            None => true,
            Some(t) => now.duration_since(*t) >= FLUSH_EVERY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_note_is_written_then_counts_gather_until_due() {
        let a = Activity::default();
        assert_eq!(a.note("s", 1), Some(1));
        assert_eq!(a.note("s", 1), None);
        assert_eq!(a.note("s", 1), None);
        assert_eq!(a.pending("s"), 2);
        a.restore("s", 5);
        assert_eq!(a.note("s", 0), Some(7), "a failed write is retried at once");
        assert_eq!(a.pending("s"), 0);
        assert_eq!(a.pending("other"), 0);
        a.forget("s");
        assert_eq!(a.note("s", 1), Some(1));
    }
}
