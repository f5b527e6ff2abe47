//! Unit tests of the TLS mode handling: which verification each mode asks
//! for, config building from files, and the error wording.

use super::*;
use std::path::PathBuf;

fn endpoint(tls: TlsMode) -> Endpoint {
    Endpoint {
        host: "db.example".into(),
        port: 5432,
        user: "alice".into(),
        password: None,
        database: "app".into(),
        tls,
        ca_file: None,
        client_cert: None,
        client_key: None,
    }
}

#[test]
fn modes_map_to_libpq_semantics() {
    assert_eq!(verification(TlsMode::Disable, false), None);
    assert_eq!(verification(TlsMode::Disable, true), None);
    assert_eq!(verification(TlsMode::Prefer, false), Some(Verification::None));
    assert_eq!(verification(TlsMode::Prefer, true), Some(Verification::None), "prefer never verifies");
    assert_eq!(verification(TlsMode::Require, false), Some(Verification::None));
    assert_eq!(verification(TlsMode::Require, true), Some(Verification::Chain), "require + CA = verify-ca");
    assert_eq!(verification(TlsMode::VerifyFull, false), Some(Verification::Full));
    assert_eq!(verification(TlsMode::VerifyFull, true), Some(Verification::Full));
}

#[test]
fn disable_builds_no_config_and_others_do() {
    assert!(client_config(&endpoint(TlsMode::Disable)).unwrap().is_none());
    assert!(mysql_ssl_opts(&endpoint(TlsMode::Disable)).unwrap().is_none());
    for mode in [TlsMode::Prefer, TlsMode::Require, TlsMode::VerifyFull] {
        assert!(client_config(&endpoint(mode)).unwrap().is_some(), "{mode:?}");
    }
    let my = mysql_ssl_opts(&endpoint(TlsMode::Require)).unwrap().unwrap();
    assert!(my.accept_invalid_certs());
    let my = mysql_ssl_opts(&endpoint(TlsMode::VerifyFull)).unwrap().unwrap();
    assert!(!my.accept_invalid_certs() && !my.skip_domain_validation());
}

#[test]
fn unreadable_or_empty_ca_file_is_named() {
    let mut ep = endpoint(TlsMode::VerifyFull);
    ep.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
    let err = client_config(&ep).unwrap_err().to_string();
    assert!(err.contains("ca_file /nonexistent/ca.pem") && err.contains("alice@db.example:5432/app"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    ep.ca_file = Some(empty.clone());
    let err = client_config(&ep).unwrap_err().to_string();
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let err = mysql_ssl_opts(&ep).unwrap_err().to_string();
    assert!(err.contains("holds no PEM certificate"), "{err}");
}

#[test]
fn client_cert_needs_its_key() {
    let mut ep = endpoint(TlsMode::Require);
    ep.client_cert = Some(PathBuf::from("/x/client.pem"));
    let err = client_config(&ep).unwrap_err().to_string();
    assert!(err.contains("client_cert and client_key must be set together"), "{err}");
    assert!(mysql_ssl_opts(&ep).is_err());
}

#[test]
fn handshake_errors_name_host_and_roots() {
    let mut ep = endpoint(TlsMode::VerifyFull);
    ep.ca_file = Some(PathBuf::from("/etc/tandem/ca.pem"));
    let io = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
    );
    let text = handshake_error(&ep, &io).unwrap().to_string();
    assert!(text.contains("certificate verify failed"), "{text}");
    assert!(text.contains("db.example") && text.contains("ca_file /etc/tandem/ca.pem"), "{text}");
    let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
    let text = handshake_error(&ep, &name).unwrap().to_string();
    assert!(text.contains("does not name host \"db.example\""), "{text}");
    assert!(handshake_error(&ep, &std::io::Error::other("reset")).is_none());
}

#[test]
fn plaintext_refusals_are_recognised() {
    let hba = "no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"x\", no encryption";
    assert!(pg_refused_plaintext("28000", hba));
    assert!(pg_refused_plaintext("28000", "no pg_hba.conf entry for host \"1.2.3.4\", user \"u\", database \"d\", SSL off"));
    assert!(!pg_refused_plaintext("28000", "no pg_hba.conf entry for host \"1.2.3.4\", user \"u\", database \"d\", SSL encryption"));
    assert!(!pg_refused_plaintext("28P01", hba));
    assert!(mysql_refused_plaintext(3159));
    assert!(!mysql_refused_plaintext(MYSQL_ACCESS_DENIED));
    let text = requires_tls_error(&endpoint(TlsMode::Disable), "nope").to_string();
    assert!(text.contains("requires TLS") && text.contains("tls = \"require\" or \"verify-full\""), "{text}");
}

#[test]
fn server_names_accept_ips_and_hosts() {
    assert!(matches!(server_name("127.0.0.1").unwrap(), ServerName::IpAddress(_)));
    assert!(matches!(server_name("db.example").unwrap(), ServerName::DnsName(_)));
    assert!(server_name("not a host").is_err());
}
