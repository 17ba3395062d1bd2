//! The evidence audit trail: append-only, hash-chained entries for every evidence action.
//!
//! Entry `n` stores `prev_hash` (entry `n - 1`'s hash, 64 zeros for the first) and
//! `entry_hash = hex SHA-256("leaktrace/v1/audit" || field...)` over its sequence number,
//! case, actor, action, detail, time and `prev_hash`, each field length-prefixed. Changing,
//! removing or reordering any entry breaks the chain from that point, which [`verify`] reports.
//! (Cutting entries off the end leaves a valid shorter chain: the head hash, printed by
//! `leaktrace audit verify` and written into every evidence report, is the anchor to compare.)
//! Appends are serialised: an advisory transaction lock on PostgreSQL, an immediate
//! transaction on SQLite.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::db::schema::audit_log;
use crate::db::{now, DbConnection, DbError};

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Advisory lock key that serialises appends on PostgreSQL ("LTAUDIT" in ASCII).
pub const APPEND_LOCK_KEY: i64 = 0x004c_5441_5544_4954;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub seq: i64,
    pub case_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub prev_hash: String,
    pub entry_hash: String,
    pub created_at: NaiveDateTime,
}

impl AuditEntry {
    /// The hash this entry must carry, from its other fields.
    pub fn expected_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"leaktrace/v1/audit");
        let time = self.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        let seq = self.seq.to_be_bytes();
        let fields: [&[u8]; 7] = [
            &seq,
            self.case_id.as_deref().unwrap_or("").as_bytes(),
            self.actor.as_bytes(),
            self.action.as_bytes(),
            self.detail.as_bytes(),
            time.as_bytes(),
            self.prev_hash.as_bytes(),
        ];
        for f in fields {
            h.update((f.len() as u32).to_be_bytes());
            h.update(f);
        }
        hex::encode(h.finalize())
    }
}

/// Appends an entry; returns it.
pub fn append(
    conn: &mut DbConnection,
    case_id: Option<&str>,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<AuditEntry, DbError> {
    // Serialised so that each entry reads the head its own write extends.
    crate::db::serialised(conn, APPEND_LOCK_KEY, |c| {
        append_within(c, case_id, actor, action, detail)
    })
}

/// [`append`] as part of a larger change: the caller runs it inside
/// `db::serialised_all(conn, &[..., APPEND_LOCK_KEY], ...)`, so the entry is written, or not,
/// with the change it records.
pub fn append_within(
    conn: &mut DbConnection,
    case_id: Option<&str>,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<AuditEntry, DbError> {
    let write = |c: &mut DbConnection| -> Result<AuditEntry, DbError> {
        let last: Option<(i64, String)> = audit_log::table
            .order(audit_log::seq.desc())
            .select((audit_log::seq, audit_log::entry_hash))
            .first(c)
            .optional()?;
        let (seq, prev_hash) = match last {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_string()),
        };
        let mut entry = AuditEntry {
            seq,
            case_id: case_id.map(str::to_string),
            actor: actor.to_string(),
            action: action.to_string(),
            detail: detail.to_string(),
            prev_hash,
            entry_hash: String::new(),
            created_at: now(),
        };
        entry.entry_hash = entry.expected_hash();
        diesel::insert_into(audit_log::table)
            .values(&entry)
            .execute(c)?;
        Ok(entry)
    };
    write(conn)
}

/// The newest entries first, at most `limit`.
pub fn recent(conn: &mut DbConnection, limit: i64) -> Result<Vec<AuditEntry>, DbError> {
    Ok(audit_log::table
        .order(audit_log::seq.desc())
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)?)
}

/// Entries of one case, oldest first.
pub fn for_case(conn: &mut DbConnection, case_id: &str) -> Result<Vec<AuditEntry>, DbError> {
    Ok(audit_log::table
        .filter(audit_log::case_id.eq(case_id))
        .order(audit_log::seq.asc())
        .select(AuditEntry::as_select())
        .load(conn)?)
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    /// The whole chain holds: `entries` entries, the last with hash `head`.
    Intact { entries: u64, head: String },
    /// The first entry where the chain breaks, and how.
    Broken { seq: i64, reason: String },
}

/// Walks the whole chain in sequence order.
pub fn verify(conn: &mut DbConnection) -> Result<Verification, DbError> {
    let entries: Vec<AuditEntry> = audit_log::table
        .order(audit_log::seq.asc())
        .select(AuditEntry::as_select())
        .load(conn)?;
    let mut prev = GENESIS.to_string();
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if e.seq != expected_seq {
            return Ok(Verification::Broken {
                seq: expected_seq,
                reason: format!("entry {expected_seq} is missing (next is {})", e.seq),
            });
        }
        if e.prev_hash != prev {
            return Ok(Verification::Broken {
                seq: e.seq,
                reason: "does not follow the entry before it (removed or reordered)".into(),
            });
        }
        if e.entry_hash != e.expected_hash() {
            return Ok(Verification::Broken {
                seq: e.seq,
                reason: "its content does not match its hash (modified)".into(),
            });
        }
        prev = e.entry_hash.clone();
    }
    Ok(Verification::Intact {
        entries: entries.len() as u64,
        head: prev,
    })
}
