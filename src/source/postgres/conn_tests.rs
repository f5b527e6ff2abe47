//! Tests of the replication connection's framing, parsing, quoting and
//! startup/authentication against an in-process fake server.

use super::*;
use crate::config::Secret;
use tokio::io::duplex;
use tokio::net::TcpListener;

fn stream_over(io: impl Transport + 'static) -> ReplicationStream {
    ReplicationStream {
        wire: Wire { io: Box::new(io), rbuf: BytesMut::new(), wbuf: BytesMut::new() },
        describe: "test".into(),
    }
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn xlog(wal_start: u64, wal_end: u64, data: &[u8]) -> Vec<u8> {
    let mut body = vec![b'w'];
    body.extend_from_slice(&wal_start.to_be_bytes());
    body.extend_from_slice(&wal_end.to_be_bytes());
    body.extend_from_slice(&77i64.to_be_bytes());
    body.extend_from_slice(data);
    frame(b'd', &body)
}

fn keepalive(wal_end: u64, reply: bool) -> Vec<u8> {
    let mut body = vec![b'k'];
    body.extend_from_slice(&wal_end.to_be_bytes());
    body.extend_from_slice(&5i64.to_be_bytes());
    body.push(u8::from(reply));
    frame(b'd', &body)
}

#[test]
fn quoting_and_start_replication_command() {
    assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    assert_eq!(quote_literal("it's"), "'it''s'");
    assert_eq!(
        start_replication_sql("tandem_crm", Lsn(0x16_B374_D848), "pub's \"x\""),
        "START_REPLICATION SLOT \"tandem_crm\" LOGICAL 16/B374D848 (proto_version '1', publication_names '\"pub''s \"\"x\"\"\"', messages 'true')"
    );
}

#[test]
fn copy_data_messages_parse_and_malformed_ones_fail() {
    let raw = xlog(0x10, 0x20, b"B123");
    let msg = parse_copy_data(Bytes::copy_from_slice(&raw[5..])).unwrap();
    assert_eq!(
        msg,
        ReplicationMessage::XLogData {
            wal_start: Lsn(0x10),
            wal_end: Lsn(0x20),
            server_time: 77,
            data: Bytes::from_static(b"B123")
        }
    );
    let raw = keepalive(0x30, true);
    let msg = parse_copy_data(Bytes::copy_from_slice(&raw[5..])).unwrap();
    assert_eq!(msg, ReplicationMessage::Keepalive { wal_end: Lsn(0x30), server_time: 5, reply_requested: true });
    for bad in [&b""[..], b"w\0\0", b"k\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", b"x"] {
        assert!(parse_copy_data(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn server_errors_carry_sqlstate_message_and_detail() {
    let body = b"SERROR\0VERROR\0C42704\0Mreplication slot \"x\" does not exist\0Dsome detail\0\0";
    let Error::PgServer { code, message } = server_error(body) else { panic!() };
    assert_eq!(code, "42704");
    assert_eq!(message, "replication slot \"x\" does not exist (some detail)");
    // Garbage never panics.
    let _ = server_error(b"C");
    let _ = server_error(b"");
}

#[tokio::test]
async fn frames_split_across_reads_and_cancelled_reads_lose_nothing() {
    let (client, mut server) = duplex(1024);
    let mut stream = stream_over(client);
    let mut bytes = xlog(1, 2, b"hello");
    bytes.extend(keepalive(3, false));
    let (first, rest) = bytes.split_at(7);
    server.write_all(first).await.unwrap();
    // A select branch that gives up mid-frame must not lose the partial frame.
    let timed_out = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
    assert!(timed_out.is_err());
    server.write_all(rest).await.unwrap();
    let m = stream.next().await.unwrap().unwrap();
    assert!(matches!(m, ReplicationMessage::XLogData { ref data, .. } if &data[..] == b"hello"), "{m:?}");
    let m = stream.next().await.unwrap().unwrap();
    assert!(matches!(m, ReplicationMessage::Keepalive { wal_end: Lsn(3), .. }), "{m:?}");
    // Notices are skipped, CopyDone ends the stream, errors are PgServer.
    server.write_all(&frame(b'N', b"SNOTICE\0C00000\0Mhi\0\0")).await.unwrap();
    server.write_all(&frame(b'c', b"")).await.unwrap();
    assert_eq!(stream.next().await.unwrap(), None);
    server.write_all(&frame(b'E', b"C57P01\0Mterminating\0\0")).await.unwrap();
    assert!(matches!(stream.next().await, Err(Error::PgServer { code, .. }) if code == "57P01"));
    // A bad length is a protocol error, EOF an io error.
    server.write_all(&[b'd', 0, 0, 0, 2]).await.unwrap();
    assert!(matches!(stream.next().await, Err(Error::Protocol(_))));
    let mut stream = stream_over(duplex(64).0);
    assert!(matches!(stream.next().await, Err(Error::Io(_))));
}

#[tokio::test]
async fn status_update_layout() {
    let (client, mut server) = duplex(1024);
    let mut stream = stream_over(client);
    stream.send_status(Lsn(1), Lsn(2), Lsn(3), true).await.unwrap();
    let mut buf = [0u8; 39];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf[..6], &[b'd', 0, 0, 0, 38, b'r']);
    assert_eq!(&buf[6..14], &1u64.to_be_bytes());
    assert_eq!(&buf[14..22], &2u64.to_be_bytes());
    assert_eq!(&buf[22..30], &3u64.to_be_bytes());
    let clock = i64::from_be_bytes(buf[30..38].try_into().unwrap());
    assert!(clock > 700_000_000_000_000, "µs since 2000: {clock}");
    assert_eq!(buf[38], 1);
}

fn endpoint(port: u16, password: Option<&str>, tls: TlsMode) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        user: "alice".into(),
        password: password.map(Secret::new),
        database: "app".into(),
        tls,
        ca_file: None,
        client_cert: None,
        client_key: None,
    }
}

/// Reads an SSLRequest and refuses it ('N').
async fn refuse_ssl_request(s: &mut tokio::net::TcpStream) {
    let mut req = [0u8; 8];
    s.read_exact(&mut req).await.unwrap();
    assert_eq!(req, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f], "SSLRequest");
    s.write_all(b"N").await.unwrap();
}

/// Refuses TLS, reads the startup packet, asks for an MD5 password, checks
/// it, then answers one simple query with one row.
async fn fake_md5_server(listener: TcpListener) -> Vec<u8> {
    let (mut s, _) = listener.accept().await.unwrap();
    refuse_ssl_request(&mut s).await;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut startup = vec![0u8; i32::from_be_bytes(len) as usize - 4];
    s.read_exact(&mut startup).await.unwrap();
    s.write_all(&frame(b'R', &[0, 0, 0, 5, 1, 2, 3, 4])).await.unwrap();
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], b'p');
    let mut pw = vec![0u8; i32::from_be_bytes(head[1..5].try_into().unwrap()) as usize - 4];
    s.read_exact(&mut pw).await.unwrap();
    let expected = md5_hash(b"alice", b"s3cret", [1, 2, 3, 4]);
    assert_eq!(&pw[..pw.len() - 1], expected.as_bytes());
    s.write_all(&frame(b'R', &[0, 0, 0, 0])).await.unwrap();
    s.write_all(&frame(b'S', b"server_version\x0015\0")).await.unwrap();
    s.write_all(&frame(b'K', &[0, 0, 0, 1, 0, 0, 0, 2])).await.unwrap();
    s.write_all(&frame(b'Z', b"I")).await.unwrap();
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], b'Q');
    let mut q = vec![0u8; i32::from_be_bytes(head[1..5].try_into().unwrap()) as usize - 4];
    s.read_exact(&mut q).await.unwrap();
    let mut row = 2i16.to_be_bytes().to_vec();
    row.extend_from_slice(&2i32.to_be_bytes());
    row.extend_from_slice(b"ab");
    row.extend_from_slice(&(-1i32).to_be_bytes());
    s.write_all(&frame(b'T', &[0, 0])).await.unwrap();
    s.write_all(&frame(b'D', &row)).await.unwrap();
    s.write_all(&frame(b'C', b"SELECT 1\0")).await.unwrap();
    s.write_all(&frame(b'Z', b"I")).await.unwrap();
    startup
}

#[tokio::test]
async fn md5_login_startup_parameters_and_simple_query() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(fake_md5_server(listener));
    let mut conn = ReplicationConn::connect(&endpoint(port, Some("s3cret"), TlsMode::Prefer)).await.unwrap();
    let rows = conn.simple_query("IDENTIFY_SYSTEM").await.unwrap();
    assert_eq!(rows, vec![vec![Some("ab".to_string()), None]]);
    let startup = String::from_utf8(server.await.unwrap()).unwrap();
    for needle in ["user\0alice\0", "database\0app\0", "replication\0database\0", "TimeZone\0UTC\0", "DateStyle\0ISO\0"]
    {
        assert!(startup.contains(needle), "startup packet lacks {needle:?}: {startup:?}");
    }
}

#[tokio::test]
async fn missing_password_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf).await;
        s.write_all(&frame(b'R', &[0, 0, 0, 3])).await.unwrap();
        let _ = s.read(&mut buf).await;
    });
    let err = ReplicationConn::connect(&endpoint(port, None, TlsMode::Disable)).await.unwrap_err();
    assert!(err.to_string().contains("password") && !err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test]
async fn require_fails_when_the_server_refuses_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        refuse_ssl_request(&mut s).await;
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
    });
    let err = ReplicationConn::connect(&endpoint(port, None, TlsMode::Require)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("does not accept TLS") && text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert_eq!(err.classify(), crate::error::ErrorClass::Definite);
}
