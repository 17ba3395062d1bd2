//! Unauthenticated file probes (`/media/...`, `*.json`, traversal attempts) aggregated per
//! address and window: the first probe of an address in a window is a security event; later
//! ones only update that event's count (at 2, 4, 8, ... and every [`UPDATE_EVERY`]), so a
//! flood from one address is one row, a few writes, not a row per request. Addresses beyond
//! [`MAX_ADDRESSES`] in one window share one overflow event.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long one event gathers an address's probes.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// Probes between two writes of a count, once the count is past the powers of two.
const UPDATE_EVERY: u64 = 64;
/// Addresses tracked at once; more share the overflow key.
pub const MAX_ADDRESSES: usize = 10_000;
/// The key under which addresses beyond [`MAX_ADDRESSES`] are counted together.
pub const OVERFLOW: &str = "(many addresses)";

/// What to write for a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A new event for this key (then [`Probes::recorded`] with its id).
    Record { key: String },
    /// The key's event now counts `count` probes, the first of them `first`.
    Update {
        event_id: String,
        count: u64,
        first: String,
    },
    /// Counted in memory only.
    Nothing,
}

#[derive(Default)]
pub struct Probes {
    by_key: Mutex<HashMap<String, Window>>,
}

struct Window {
    started: Instant,
    /// `None` until the event is written.
    event_id: Option<String>,
    count: u64,
    /// The window's first request.
    first: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Probes {
    /// Counts a probe (`request`) from `address` at `now`; says what to write.
    pub fn note(&self, address: &str, request: &str, now: Instant) -> Write {
        let mut map = lock(&self.by_key);
        if map.len() >= MAX_ADDRESSES && !map.contains_key(address) {
            map.retain(|_, w| now.duration_since(w.started) < WINDOW);
        }
        let key = if map.len() >= MAX_ADDRESSES && !map.contains_key(address) {
            OVERFLOW
        } else {
            address
        };
        let current = map
            .get(key)
            .is_some_and(|w| now.duration_since(w.started) < WINDOW);
        if !current {
            map.insert(
                key.to_string(),
                Window {
                    started: now,
                    event_id: None,
                    count: 1,
                    first: request.to_string(),
                },
            );
            return Write::Record { key: key.into() };
        }
        let Some(w) = map.get_mut(key) else {
            return Write::Nothing;
        };
        w.count += 1;
        match &w.event_id {
            Some(id) if w.count.is_power_of_two() || w.count % UPDATE_EVERY == 0 => Write::Update {
                event_id: id.clone(),
                count: w.count,
                first: w.first.clone(),
            },
            _ => Write::Nothing,
        }
    }

    /// The key's event could not be written: its window starts again with the next probe
    /// (rather than counting probes into an event that does not exist).
    pub fn forget(&self, key: &str) {
        lock(&self.by_key).remove(key);
    }

    /// The event written for `key`'s window; returns the count to write now when probes
    /// arrived while it was being written.
    pub fn recorded(&self, key: &str, event_id: String) -> Option<u64> {
        let mut map = lock(&self.by_key);
        let w = map.get_mut(key)?;
        w.event_id = Some(event_id);
        (w.count > 1).then_some(w.count)
    }
}

/// The key an address's probes are counted under: an IPv4 address as it is, an IPv6 address
/// by its /64 (one host has a whole /64 to spray from).
pub fn key_of(address: &str) -> String {
    match address.parse::<std::net::Ipv6Addr>() {
        Ok(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        assert_eq!(key_of("203.0.113.7"), "203.0.113.7");
        assert_eq!(key_of("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key_of("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(key_of("::ffff:192.0.2.1"), "::ffff:192.0.2.1");
        assert_eq!(key_of(""), "");
    }

    #[test]
    fn a_flood_from_one_address_is_one_event_with_a_few_count_updates() {
        let p = Probes::default();
        let t0 = Instant::now();
        assert_eq!(
            p.note("10.0.0.1", "GET /m", t0),
            Write::Record {
                key: "10.0.0.1".into()
            }
        );
        assert_eq!(p.recorded("10.0.0.1", "e1".into()), None);
        let mut writes = 0;
        for i in 0..10_000 {
            match p.note("10.0.0.1", "GET /m", t0 + Duration::from_millis(i)) {
                Write::Record { .. } => panic!("a second event within the window"),
                Write::Update {
                    event_id, count, ..
                } => {
                    assert_eq!(event_id, "e1");
                    assert_eq!(count, i + 2);
                    writes += 1;
                }
                Write::Nothing => {}
            }
        }
        assert!(writes < 200, "{writes} writes for 10,000 probes");
        // Another address, and the same one after the window, get events of their own.
        assert!(matches!(
            p.note("10.0.0.2", "GET /m", t0),
            Write::Record { .. }
        ));
        assert!(matches!(
            p.note("10.0.0.1", "GET /m", t0 + WINDOW + Duration::from_secs(1)),
            Write::Record { .. }
        ));
    }

    #[test]
    fn probes_during_the_first_write_are_counted_and_many_addresses_share_one_event() {
        let p = Probes::default();
        let t0 = Instant::now();
        assert!(matches!(p.note("a", "GET /m", t0), Write::Record { .. }));
        assert_eq!(p.note("a", "GET /m", t0), Write::Nothing);
        assert_eq!(p.note("a", "GET /m", t0), Write::Nothing);
        assert_eq!(p.recorded("a", "e".into()), Some(3));
        for i in 0..MAX_ADDRESSES + 50 {
            p.note(&format!("addr-{i}"), "GET /m", t0);
        }
        let overflow = (0..50)
            .filter(|i| p.note(&format!("late-{i}"), "GET /m", t0) != Write::Nothing)
            .count();
        assert!(
            overflow <= 8,
            "{overflow} writes for 50 addresses past the cap"
        );
    }
}
