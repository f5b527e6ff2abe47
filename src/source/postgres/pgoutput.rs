//! Decoder for pgoutput logical replication messages, protocol version 1.
//!
//! `decode` is a pure function from the payload of one XLogData message to one
//! `PgOutputMessage`. It never panics, whatever the bytes: every length and
//! count is checked against what is left, a message with missing or extra bytes
//! is an `Error::Decode` naming the message and the offset. Tuple text values are
//! zero-copy slices (`Bytes`) of the input; turning them into `Value`s is the job
//! of `values.rs`, mapping relations to pairs that of `normalize.rs`.
//! Positions carried here are raw: callers must take transaction positions only
//! from `Commit::end_lsn` (FACTS.md: `wal_start` is 0/0 for some messages).

use crate::model::Lsn;
use crate::{Error, Result};
use bytes::Bytes;

/// Microseconds between 1970-01-01 and 2000-01-01, the Postgres epoch.
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Converts µs since 2000-01-01 (Postgres) to µs since 1970-01-01; 0 stays 0
/// ("the source did not say", e.g. the Begin of an origin-tagged transaction).
pub fn pg_time_to_unix_micros(pg_micros: i64) -> i64 {
    if pg_micros == 0 {
        0
    } else {
        pg_micros.saturating_add(PG_EPOCH_OFFSET_MICROS)
    }
}

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum PgOutputMessage {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin),
    Relation(Relation),
    Type(TypeInfo),
    Insert(Insert),
    Update(Update),
    Delete(Delete),
    Truncate(Truncate),
    Message(LogicalMessage),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    /// LSN of the commit record (its start; `Commit::end_lsn` is its end).
    pub final_lsn: Lsn,
    /// µs since 2000-01-01; 0 in origin-tagged transactions without xact setup.
    pub commit_ts: i64,
    pub xid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub flags: u8,
    pub commit_lsn: Lsn,
    /// End of the commit record: the transaction's position.
    pub end_lsn: Lsn,
    /// µs since 2000-01-01.
    pub commit_ts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub origin_lsn: Lsn,
    pub name: String,
}

/// `relreplident` as pgoutput sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    Default,
    Nothing,
    Full,
    Index,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Bit 1: the column is part of the replica identity key.
    pub flags: u8,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

impl RelationColumn {
    pub fn is_key(&self) -> bool {
        self.flags & 1 != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    /// Empty for `pg_catalog`.
    pub namespace: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<RelationColumn>,
}

/// A user-defined type (e.g. an enum) as pgoutput announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    pub id: u32,
    pub namespace: String,
    pub name: String,
}

/// One column of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    Null,
    /// An unchanged TOAST value that was not sent.
    Unchanged,
    /// The value in its text output form (client encoding, UTF-8 here).
    Text(Bytes),
}

pub type Tuple = Vec<TupleValue>;

/// The old row image of an update or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldTuple {
    /// 'K': replica identity key columns only (others are null).
    Key(Tuple),
    /// 'O': the whole old row (REPLICA IDENTITY FULL).
    Full(Tuple),
}

impl OldTuple {
    pub fn tuple(&self) -> &Tuple {
        match self {
            OldTuple::Key(t) | OldTuple::Full(t) => t,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    pub relation: u32,
    pub new: Tuple,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub relation: u32,
    pub old: Option<OldTuple>,
    pub new: Tuple,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub relation: u32,
    pub old: OldTuple,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    /// Bit 1: CASCADE, bit 2: RESTART IDENTITY.
    pub options: u8,
    pub relations: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalMessage {
    /// Bit 1: transactional.
    pub flags: u8,
    pub lsn: Lsn,
    pub prefix: String,
    pub content: Bytes,
}

/// Decodes one pgoutput message (the `data` of one XLogData).
pub fn decode(data: &Bytes) -> Result<PgOutputMessage> {
    let mut r = Reader { buf: data, pos: 0, what: "message" };
    let tag = r.u8()?;
    r.what = message_name(tag);
    let msg = match tag {
        b'B' => PgOutputMessage::Begin(Begin { final_lsn: r.lsn()?, commit_ts: r.i64()?, xid: r.u32()? }),
        b'C' => PgOutputMessage::Commit(Commit {
            flags: r.u8()?,
            commit_lsn: r.lsn()?,
            end_lsn: r.lsn()?,
            commit_ts: r.i64()?,
        }),
        b'O' => PgOutputMessage::Origin(Origin { origin_lsn: r.lsn()?, name: r.cstr()? }),
        b'R' => PgOutputMessage::Relation(relation(&mut r)?),
        b'Y' => PgOutputMessage::Type(TypeInfo { id: r.u32()?, namespace: r.cstr()?, name: r.cstr()? }),
        b'I' => {
            let relation = r.u32()?;
            r.expect_tag(b'N')?;
            PgOutputMessage::Insert(Insert { relation, new: tuple(&mut r)? })
        }
        b'U' => {
            let relation = r.u32()?;
            let old = match r.u8()? {
                b'N' => None,
                b'K' => {
                    let t = tuple(&mut r)?;
                    r.expect_tag(b'N')?;
                    Some(OldTuple::Key(t))
                }
                b'O' => {
                    let t = tuple(&mut r)?;
                    r.expect_tag(b'N')?;
                    Some(OldTuple::Full(t))
                }
                other => return Err(r.err(&format!("unexpected tuple tag {:?}", other as char))),
            };
            PgOutputMessage::Update(Update { relation, old, new: tuple(&mut r)? })
        }
        b'D' => {
            let relation = r.u32()?;
            let old = match r.u8()? {
                b'K' => OldTuple::Key(tuple(&mut r)?),
                b'O' => OldTuple::Full(tuple(&mut r)?),
                other => return Err(r.err(&format!("unexpected tuple tag {:?}", other as char))),
            };
            PgOutputMessage::Delete(Delete { relation, old })
        }
        b'T' => {
            let n = r.count_i32()?;
            let options = r.u8()?;
            let mut relations = Vec::with_capacity(n.min(r.remaining() / 4));
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            PgOutputMessage::Truncate(Truncate { options, relations })
        }
        b'M' => {
            let flags = r.u8()?;
            let lsn = r.lsn()?;
            let prefix = r.cstr()?;
            let len = r.count_i32()?;
            let content = r.bytes(len)?;
            PgOutputMessage::Message(LogicalMessage { flags, lsn, prefix, content })
        }
        other => {
            return Err(Error::Decode(format!("pgoutput: unknown message tag 0x{other:02x} ({} bytes)", data.len())))
        }
    };
    if r.remaining() != 0 {
        return Err(r.err(&format!("{} unexpected trailing bytes", r.remaining())));
    }
    Ok(msg)
}

fn message_name(tag: u8) -> &'static str {
    match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'M' => "Message",
        _ => "message",
    }
}

fn relation(r: &mut Reader<'_>) -> Result<Relation> {
    let id = r.u32()?;
    let namespace = r.cstr()?;
    let name = r.cstr()?;
    let replica_identity = match r.u8()? {
        b'd' => ReplicaIdentity::Default,
        b'n' => ReplicaIdentity::Nothing,
        b'f' => ReplicaIdentity::Full,
        b'i' => ReplicaIdentity::Index,
        other => return Err(r.err(&format!("unknown replica identity {:?}", other as char))),
    };
    let n = r.count_i16()?;
    // Each column takes at least 10 bytes: never reserve more than the input can hold.
    let mut columns = Vec::with_capacity(n.min(r.remaining() / 10));
    for _ in 0..n {
        columns.push(RelationColumn { flags: r.u8()?, name: r.cstr()?, type_oid: r.u32()?, type_modifier: r.i32()? });
    }
    Ok(Relation { id, namespace, name, replica_identity, columns })
}

fn tuple(r: &mut Reader<'_>) -> Result<Tuple> {
    let n = r.count_i16()?;
    let mut values = Vec::with_capacity(n.min(r.remaining()));
    for _ in 0..n {
        values.push(match r.u8()? {
            b'n' => TupleValue::Null,
            b'u' => TupleValue::Unchanged,
            b't' => {
                let len = r.count_i32()?;
                TupleValue::Text(r.bytes(len)?)
            }
            b'b' => return Err(r.err("binary tuple values are not supported (text protocol expected)")),
            other => return Err(r.err(&format!("unknown tuple value kind {:?}", other as char))),
        });
    }
    Ok(values)
}

/// A bounds-checked reader over one message.
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    what: &'static str,
}

impl Reader<'_> {
    fn err(&self, reason: &str) -> Error {
        Error::Decode(format!("pgoutput {} at offset {}: {reason}", self.what, self.pos))
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.pos.checked_add(N).ok_or_else(|| self.err("length overflow"))?;
        let slice = self.buf.get(self.pos..end).ok_or_else(|| self.err("truncated"))?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn lsn(&mut self) -> Result<Lsn> {
        Ok(Lsn(u64::from_be_bytes(self.take()?)))
    }

    fn count_i16(&mut self) -> Result<usize> {
        let n = self.i16()?;
        usize::try_from(n).map_err(|_| self.err(&format!("negative count {n}")))
    }
    fn count_i32(&mut self) -> Result<usize> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| self.err(&format!("negative length {n}")))
    }

    fn expect_tag(&mut self, want: u8) -> Result<()> {
        let got = self.u8()?;
        if got == want {
            Ok(())
        } else {
            Err(self.err(&format!("expected tuple tag {:?}, got {:?}", want as char, got as char)))
        }
    }

    fn bytes(&mut self, len: usize) -> Result<Bytes> {
        if len > self.remaining() {
            return Err(self.err(&format!("value of {len} bytes but only {} left", self.remaining())));
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    /// A NUL-terminated UTF-8 string.
    fn cstr(&mut self) -> Result<String> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let nul = rest.iter().position(|&b| b == 0).ok_or_else(|| self.err("unterminated string"))?;
        let s = std::str::from_utf8(rest.get(..nul).unwrap_or_default())
            .map_err(|_| self.err("string is not valid UTF-8"))?
            .to_string();
        self.pos += nul + 1;
        Ok(s)
    }
}

#[cfg(test)]
#[path = "pgoutput_tests.rs"]
mod tests;
