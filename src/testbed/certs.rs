//! Throwaway X.509 material for TLS tests, made with the `openssl` command:
//! a CA, a server certificate signed by it for the DNS name `localhost`
//! only (so `verify-full` against `127.0.0.1` fails on the name while the
//! chain is good), a client certificate (CN `tandem`) signed by the same CA,
//! and a second, unrelated CA to play the wrong `ca_file`.
//!
//! Keys are EC P-256, valid for three days, unencrypted, written 0600 into
//! the given directory. Nothing here is fit for production use.

use super::TestbedError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of the generated files (PEM).
#[derive(Debug, Clone)]
pub struct TestCerts {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca_cert: PathBuf,
}

/// What a throwaway server needs to offer TLS (and to accept only TLS).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA for client certificates.
    pub ca_file: PathBuf,
}

impl TestCerts {
    /// The server side of these certificates.
    pub fn server(&self) -> ServerTls {
        ServerTls { cert_file: self.server_cert.clone(), key_file: self.server_key.clone(), ca_file: self.ca_cert.clone() }
    }
}

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
";

fn openssl(dir: &Path, args: &[&str]) -> Result<(), TestbedError> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| TestbedError::new("openssl", format!("cannot run openssl (is it installed?): {e}")))?;
    if !out.status.success() {
        return Err(TestbedError::new(
            "openssl",
            format!("openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim_end()),
        ));
    }
    Ok(())
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

fn make_ca(dir: &Path, name: &str, cn: &str) -> Result<(), TestbedError> {
    let (key, crt, subj) = (format!("{name}.key"), format!("{name}.crt"), format!("/CN={cn}"));
    let mut args = vec!["req", "-x509", "-config", "openssl.cnf", "-extensions", "v3_ca", "-nodes", "-days", "3"];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &crt, "-subj", &subj]);
    openssl(dir, &args)
}

fn make_leaf(dir: &Path, name: &str, cn: &str, ext: &str, serial: &str) -> Result<(), TestbedError> {
    let (key, csr, crt, subj) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("/CN={cn}"));
    let mut args = vec!["req", "-new", "-config", "openssl.cnf", "-nodes"];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
    openssl(dir, &args)?;
    openssl(
        dir,
        &[
            "x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", serial, "-days", "3",
            "-extfile", "openssl.cnf", "-extensions", ext, "-out", &crt,
        ],
    )
}

impl TestCerts {
    /// Generate everything into `dir` (created if missing).
    pub fn generate(dir: &Path) -> Result<TestCerts, TestbedError> {
        let io = |e: std::io::Error| TestbedError::new("openssl", format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).map_err(io)?;
        make_ca(dir, "ca", "tandem test CA")?;
        make_ca(dir, "other-ca", "unrelated test CA")?;
        make_leaf(dir, "server", "localhost", "v3_server", "4242")?;
        make_leaf(dir, "client", "tandem", "v3_client", "4243")?;
        for key in ["ca.key", "other-ca.key", "server.key", "client.key"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join(key), std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        Ok(TestCerts {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            other_ca_cert: dir.join("other-ca.crt"),
        })
    }
}
