//! TLS for the LAN (HTTPS and the MQTT TLS listeners), with rustls: a certificate and key from
//! PEM files, or a self-signed certificate made at first start and kept in the data directory.
//! The certificate's SHA-256 fingerprint is what staff compare when a browser asks whether to
//! trust the box (`docs/security.md`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// File names of the self-signed certificate and key in the data directory.
pub const SELF_SIGNED_CERT: &str = "tls-cert.pem";
/// See [`SELF_SIGNED_CERT`].
pub const SELF_SIGNED_KEY: &str = "tls-key.pem";

/// A TLS server set-up: the acceptor and the leaf certificate's fingerprint.
#[derive(Clone)]
pub struct Tls {
    /// Accepts TLS connections.
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate (DER), as `AB:CD:…`.
    pub fingerprint: String,
}

/// Loads a certificate chain and key from PEM files.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("reading the TLS certificate chain {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "no certificate in {} (PEM expected)",
        cert.display()
    );
    let fingerprint = fingerprint(&chain[0]);
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("the TLS key does not match the certificate, or is not supported")?;
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
    })
}

/// The self-signed certificate in `data_dir`, made now (for `names`: host names and IP
/// addresses) if it is not there yet; its paths.
pub fn self_signed(data_dir: &Path, names: &[String]) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert = data_dir.join(SELF_SIGNED_CERT);
    let key = data_dir.join(SELF_SIGNED_KEY);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .context("making a self-signed TLS certificate")?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes())?;
    write_private(&cert, made.cert.pem().as_bytes())?;
    tracing::info!(path = %cert.display(), names = ?names, "made a self-signed TLS certificate");
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f =
        crate::files::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// SHA-256 of a DER certificate as upper-case hex pairs joined by colons.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["orderd.local".to_owned(), "192.168.1.10".to_owned()];
        let (cert, key) = self_signed(dir.path(), &names).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let tls = load(&cert, &key).unwrap();
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);
        let (cert2, _) = self_signed(dir.path(), &names).unwrap();
        assert_eq!(std::fs::read(cert2).unwrap(), first, "kept, not remade");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }
}

/// The HTTPS listener: where it is and the certificate's fingerprint (shown in Admin, so staff
/// can tell a browser's certificate question is about this box).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Https {
    /// The bound address.
    pub addr: std::net::SocketAddr,
    /// SHA-256 of the certificate.
    pub fingerprint: String,
}
