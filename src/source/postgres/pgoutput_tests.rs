//! Tests of the pgoutput decoder: one hand-built byte fixture per message type,
//! malformed inputs, and property tests (arbitrary bytes, round trips, mutated
//! valid messages never panic). Together they run the decoder budget of
//! `source::decoder_cases` (1,000,000 cases in release; `TANDEM_PROPTEST_CASES`).

use super::*;
use proptest::prelude::*;

/// Test-side encoder, written from the protocol documentation.
fn encode(msg: &PgOutputMessage) -> Vec<u8> {
    let mut b = Vec::new();
    fn cstr(b: &mut Vec<u8>, s: &str) {
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    }
    fn tuple(b: &mut Vec<u8>, t: &Tuple) {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        for v in t {
            match v {
                TupleValue::Null => b.push(b'n'),
                TupleValue::Unchanged => b.push(b'u'),
                TupleValue::Text(x) => {
                    b.push(b't');
                    b.extend_from_slice(&(x.len() as i32).to_be_bytes());
                    b.extend_from_slice(x);
                }
            }
        }
    }
    fn old(b: &mut Vec<u8>, o: &OldTuple) {
        match o {
            OldTuple::Key(t) => {
                b.push(b'K');
                tuple(b, t)
            }
            OldTuple::Full(t) => {
                b.push(b'O');
                tuple(b, t)
            }
        }
    }
    match msg {
        PgOutputMessage::Begin(m) => {
            b.push(b'B');
            b.extend_from_slice(&m.final_lsn.0.to_be_bytes());
            b.extend_from_slice(&m.commit_ts.to_be_bytes());
            b.extend_from_slice(&m.xid.to_be_bytes());
        }
        PgOutputMessage::Commit(m) => {
            b.push(b'C');
            b.push(m.flags);
            b.extend_from_slice(&m.commit_lsn.0.to_be_bytes());
            b.extend_from_slice(&m.end_lsn.0.to_be_bytes());
            b.extend_from_slice(&m.commit_ts.to_be_bytes());
        }
        PgOutputMessage::Origin(m) => {
            b.push(b'O');
            b.extend_from_slice(&m.origin_lsn.0.to_be_bytes());
            cstr(&mut b, &m.name);
        }
        PgOutputMessage::Relation(m) => {
            b.push(b'R');
            b.extend_from_slice(&m.id.to_be_bytes());
            cstr(&mut b, &m.namespace);
            cstr(&mut b, &m.name);
            b.push(match m.replica_identity {
                ReplicaIdentity::Default => b'd',
                ReplicaIdentity::Nothing => b'n',
                ReplicaIdentity::Full => b'f',
                ReplicaIdentity::Index => b'i',
            });
            b.extend_from_slice(&(m.columns.len() as i16).to_be_bytes());
            for c in &m.columns {
                b.push(c.flags);
                cstr(&mut b, &c.name);
                b.extend_from_slice(&c.type_oid.to_be_bytes());
                b.extend_from_slice(&c.type_modifier.to_be_bytes());
            }
        }
        PgOutputMessage::Type(m) => {
            b.push(b'Y');
            b.extend_from_slice(&m.id.to_be_bytes());
            cstr(&mut b, &m.namespace);
            cstr(&mut b, &m.name);
        }
        PgOutputMessage::Insert(m) => {
            b.push(b'I');
            b.extend_from_slice(&m.relation.to_be_bytes());
            b.push(b'N');
            tuple(&mut b, &m.new);
        }
        PgOutputMessage::Update(m) => {
            b.push(b'U');
            b.extend_from_slice(&m.relation.to_be_bytes());
            if let Some(o) = &m.old {
                old(&mut b, o);
            }
            b.push(b'N');
            tuple(&mut b, &m.new);
        }
        PgOutputMessage::Delete(m) => {
            b.push(b'D');
            b.extend_from_slice(&m.relation.to_be_bytes());
            old(&mut b, &m.old);
        }
        PgOutputMessage::Truncate(m) => {
            b.push(b'T');
            b.extend_from_slice(&(m.relations.len() as i32).to_be_bytes());
            b.push(m.options);
            for r in &m.relations {
                b.extend_from_slice(&r.to_be_bytes());
            }
        }
        PgOutputMessage::Message(m) => {
            b.push(b'M');
            b.push(m.flags);
            b.extend_from_slice(&m.lsn.0.to_be_bytes());
            cstr(&mut b, &m.prefix);
            b.extend_from_slice(&(m.content.len() as i32).to_be_bytes());
            b.extend_from_slice(&m.content);
        }
    }
    b
}

fn dec(bytes: &[u8]) -> Result<PgOutputMessage> {
    decode(&Bytes::copy_from_slice(bytes))
}

fn text(s: &str) -> TupleValue {
    TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn begin_fixture() {
    let bytes = [
        b'B', 0, 0, 0, 0x16, 0xB3, 0x74, 0xD8, 0x48, // final_lsn 16/B374D848
        0, 0, 0, 0, 0, 0, 0x03, 0xE8, // commit ts 1000
        0, 0, 0x02, 0xFF, // xid 767
    ];
    assert_eq!(
        dec(&bytes).unwrap(),
        PgOutputMessage::Begin(Begin { final_lsn: Lsn(0x16_B374_D848), commit_ts: 1000, xid: 767 })
    );
}

#[test]
fn commit_fixture() {
    let mut bytes = vec![b'C', 0];
    bytes.extend_from_slice(&0x100u64.to_be_bytes());
    bytes.extend_from_slice(&0x130u64.to_be_bytes());
    bytes.extend_from_slice(&(-5i64).to_be_bytes());
    assert_eq!(
        dec(&bytes).unwrap(),
        PgOutputMessage::Commit(Commit { flags: 0, commit_lsn: Lsn(0x100), end_lsn: Lsn(0x130), commit_ts: -5 })
    );
}

#[test]
fn origin_fixture() {
    let mut bytes = vec![b'O'];
    bytes.extend_from_slice(&0u64.to_be_bytes());
    bytes.extend_from_slice(b"tandem_x\0");
    assert_eq!(dec(&bytes).unwrap(), PgOutputMessage::Origin(Origin { origin_lsn: Lsn(0), name: "tandem_x".into() }));
}

#[test]
fn relation_fixture() {
    let mut bytes = vec![b'R', 0, 0, 0x40, 0x01];
    bytes.extend_from_slice(b"public\0customers\0f");
    bytes.extend_from_slice(&2i16.to_be_bytes());
    bytes.push(1);
    bytes.extend_from_slice(b"id\0");
    bytes.extend_from_slice(&20u32.to_be_bytes());
    bytes.extend_from_slice(&(-1i32).to_be_bytes());
    bytes.push(0);
    bytes.extend_from_slice(b"price\0");
    bytes.extend_from_slice(&1700u32.to_be_bytes());
    bytes.extend_from_slice(&((12 << 16 | 2) + 4i32).to_be_bytes());
    let PgOutputMessage::Relation(rel) = dec(&bytes).unwrap() else { panic!("not a relation") };
    assert_eq!(rel.id, 0x4001);
    assert_eq!((rel.namespace.as_str(), rel.name.as_str()), ("public", "customers"));
    assert_eq!(rel.replica_identity, ReplicaIdentity::Full);
    assert_eq!(rel.columns.len(), 2);
    assert!(rel.columns[0].is_key() && !rel.columns[1].is_key());
    assert_eq!((rel.columns[1].name.as_str(), rel.columns[1].type_oid), ("price", 1700));
    assert_eq!(rel.columns[1].type_modifier, (12 << 16 | 2) + 4);
}

#[test]
fn type_fixture() {
    let mut bytes = vec![b'Y', 0, 0, 0x80, 0x00];
    bytes.extend_from_slice(b"public\0mood\0");
    assert_eq!(
        dec(&bytes).unwrap(),
        PgOutputMessage::Type(TypeInfo { id: 0x8000, namespace: "public".into(), name: "mood".into() })
    );
}

#[test]
fn insert_fixture() {
    let mut bytes = vec![b'I', 0, 0, 0, 7, b'N', 0, 3];
    bytes.extend_from_slice(b"t\0\0\0\x0242");
    bytes.push(b'n');
    bytes.extend_from_slice(b"t\0\0\0\0");
    assert_eq!(
        dec(&bytes).unwrap(),
        PgOutputMessage::Insert(Insert { relation: 7, new: vec![text("42"), TupleValue::Null, text("")] })
    );
}

#[test]
fn update_fixtures_with_and_without_old_tuple() {
    // No old tuple.
    let bytes = [b'U', 0, 0, 0, 7, b'N', 0, 2, b't', 0, 0, 0, 1, b'1', b'u'];
    assert_eq!(
        dec(&bytes).unwrap(),
        PgOutputMessage::Update(Update { relation: 7, old: None, new: vec![text("1"), TupleValue::Unchanged] })
    );
    // Key-only old tuple.
    let bytes = [b'U', 0, 0, 0, 7, b'K', 0, 1, b't', 0, 0, 0, 1, b'1', b'N', 0, 1, b't', 0, 0, 0, 1, b'2'];
    assert_eq!(
        dec(&bytes).unwrap(),
        PgOutputMessage::Update(Update {
            relation: 7,
            old: Some(OldTuple::Key(vec![text("1")])),
            new: vec![text("2")]
        })
    );
    // Full old tuple.
    let bytes = [b'U', 0, 0, 0, 7, b'O', 0, 1, b'n', b'N', 0, 1, b'u'];
    assert_eq!(
        dec(&bytes).unwrap(),
        PgOutputMessage::Update(Update {
            relation: 7,
            old: Some(OldTuple::Full(vec![TupleValue::Null])),
            new: vec![TupleValue::Unchanged]
        })
    );
}

#[test]
fn delete_fixtures() {
    let bytes = [b'D', 0, 0, 0, 9, b'K', 0, 1, b't', 0, 0, 0, 2, b'4', b'2'];
    assert_eq!(
        dec(&bytes).unwrap(),
        PgOutputMessage::Delete(Delete { relation: 9, old: OldTuple::Key(vec![text("42")]) })
    );
    let bytes = [b'D', 0, 0, 0, 9, b'O', 0, 2, b'n', b'n'];
    assert_eq!(
        dec(&bytes).unwrap(),
        PgOutputMessage::Delete(Delete { relation: 9, old: OldTuple::Full(vec![TupleValue::Null, TupleValue::Null]) })
    );
}

#[test]
fn truncate_fixture() {
    let bytes = [b'T', 0, 0, 0, 2, 3, 0, 0, 0, 7, 0, 0, 0, 9];
    assert_eq!(dec(&bytes).unwrap(), PgOutputMessage::Truncate(Truncate { options: 3, relations: vec![7, 9] }));
}

#[test]
fn logical_message_fixture() {
    let mut bytes = vec![b'M', 1];
    bytes.extend_from_slice(&0x55u64.to_be_bytes());
    bytes.extend_from_slice(b"tandem\0");
    bytes.extend_from_slice(&3i32.to_be_bytes());
    bytes.extend_from_slice(b"abc");
    assert_eq!(
        dec(&bytes).unwrap(),
        PgOutputMessage::Message(LogicalMessage {
            flags: 1,
            lsn: Lsn(0x55),
            prefix: "tandem".into(),
            content: Bytes::from_static(b"abc")
        })
    );
}

#[test]
fn malformed_messages_are_errors_naming_the_message() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "truncated"),
        (b"Z", "unknown message tag"),
        (b"B\0\0\0", "Begin"),
        (b"I\0\0\0\x07X\0\0", "expected tuple tag"),
        (b"I\0\0\0\x07N\xff\xff", "negative count"),
        (b"I\0\0\0\x07N\0\x01t\x7f\xff\xff\xff", "bytes but only"),
        (b"I\0\0\0\x07N\0\x01b\0\0\0\0", "binary"),
        (b"I\0\0\0\x07N\0\x01q", "unknown tuple value kind"),
        (b"O\0\0\0\0\0\0\0\0no-nul", "unterminated"),
        (b"O\0\0\0\0\0\0\0\0\xff\0", "UTF-8"),
        (b"T\xff\xff\xff\xff\0", "negative length"),
        (b"T\x7f\xff\xff\xff\0", "truncated"),
        (b"D\0\0\0\x01N\0\0", "unexpected tuple tag"),
        (b"R\0\0\0\x01s\0t\0z\0\0", "replica identity"),
        (b"C\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0extra", "trailing"),
    ];
    for (bytes, needle) in cases {
        let err = dec(bytes).expect_err("must fail").to_string();
        assert!(err.contains(needle), "{bytes:?}: {err:?} should mention {needle:?}");
    }
}

fn arb_tuple() -> impl Strategy<Value = Tuple> {
    prop::collection::vec(
        prop_oneof![
            Just(TupleValue::Null),
            Just(TupleValue::Unchanged),
            prop::collection::vec(any::<u8>(), 0..12).prop_map(|v| TupleValue::Text(Bytes::from(v))),
        ],
        0..6,
    )
}

fn arb_old() -> impl Strategy<Value = OldTuple> {
    prop_oneof![arb_tuple().prop_map(OldTuple::Key), arb_tuple().prop_map(OldTuple::Full)]
}

fn arb_message() -> impl Strategy<Value = PgOutputMessage> {
    let name = "[a-z_]{0,10}";
    let column = (any::<u8>(), name, any::<u32>(), any::<i32>())
        .prop_map(|(flags, name, type_oid, type_modifier)| RelationColumn { flags, name, type_oid, type_modifier });
    let identity = prop_oneof![
        Just(ReplicaIdentity::Default),
        Just(ReplicaIdentity::Nothing),
        Just(ReplicaIdentity::Full),
        Just(ReplicaIdentity::Index)
    ];
    prop_oneof![
        (any::<u64>(), any::<i64>(), any::<u32>()).prop_map(|(l, ts, xid)| PgOutputMessage::Begin(Begin {
            final_lsn: Lsn(l),
            commit_ts: ts,
            xid
        })),
        (any::<u8>(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(|(flags, c, e, ts)| PgOutputMessage::Commit(
            Commit { flags, commit_lsn: Lsn(c), end_lsn: Lsn(e), commit_ts: ts }
        )),
        (any::<u64>(), name).prop_map(|(l, name)| PgOutputMessage::Origin(Origin { origin_lsn: Lsn(l), name })),
        (any::<u32>(), name, name, identity, prop::collection::vec(column, 0..5)).prop_map(
            |(id, namespace, name, replica_identity, columns)| PgOutputMessage::Relation(Relation {
                id,
                namespace,
                name,
                replica_identity,
                columns
            })
        ),
        (any::<u32>(), name, name).prop_map(|(id, namespace, name)| PgOutputMessage::Type(TypeInfo {
            id,
            namespace,
            name
        })),
        (any::<u32>(), arb_tuple()).prop_map(|(relation, new)| PgOutputMessage::Insert(Insert { relation, new })),
        (any::<u32>(), prop::option::of(arb_old()), arb_tuple())
            .prop_map(|(relation, old, new)| PgOutputMessage::Update(Update { relation, old, new })),
        (any::<u32>(), arb_old()).prop_map(|(relation, old)| PgOutputMessage::Delete(Delete { relation, old })),
        (any::<u8>(), prop::collection::vec(any::<u32>(), 0..5))
            .prop_map(|(options, relations)| PgOutputMessage::Truncate(Truncate { options, relations })),
        (any::<u8>(), any::<u64>(), name, prop::collection::vec(any::<u8>(), 0..10)).prop_map(
            |(flags, l, prefix, c)| {
                PgOutputMessage::Message(LogicalMessage { flags, lsn: Lsn(l), prefix, content: Bytes::from(c) })
            }
        ),
    ]
}

/// A mutation of a valid message: overwrite, truncate, insert or delete bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize),
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match m {
        Mutation::Set(i, b) => {
            if let Some(x) = bytes.get_mut(i % n) {
                *x = *b;
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i % n),
        Mutation::Insert(i, v) => {
            let at = (i % n).min(bytes.len());
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Remove(i) => {
            if i % n < bytes.len() {
                bytes.remove(i % n);
            }
        }
    }
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        // Favour the bytes that make lengths and counts huge or negative.
        (any::<usize>(), prop_oneof![Just(0xffu8), Just(0x7f), Just(0x80), Just(0)])
            .prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..6)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

use crate::source::{decoder_config, returns};

proptest! {
    #![proptest_config(decoder_config(300))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = returns(|| crate::fuzzing::pgoutput(&bytes))?;
    }
}

proptest! {
    #![proptest_config(decoder_config(200))]
    #[test]
    fn arbitrary_bytes_after_a_valid_tag_never_panic(
        tag in prop::sample::select(b"BCORYIUDTM".to_vec()),
        rest in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![tag];
        bytes.extend(rest);
        let _ = returns(|| dec(&bytes))?;
    }
}

proptest! {
    #![proptest_config(decoder_config(100))]
    #[test]
    fn valid_messages_round_trip(msg in arb_message()) {
        prop_assert_eq!(returns(|| dec(&encode(&msg)))?.unwrap(), msg);
    }
}

proptest! {
    #![proptest_config(decoder_config(400))]
    #[test]
    fn mutated_valid_messages_never_panic(msg in arb_message(), muts in prop::collection::vec(arb_mutation(), 1..4)) {
        let mut bytes = encode(&msg);
        for m in &muts {
            apply(&mut bytes, m);
        }
        let _ = returns(|| dec(&bytes))?;
    }
}
