//! TLS: the server certificate, client certificate verification, ALPN.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::{io_reason, ConfigError, Tls};

/// Marker in the subject of the CA that `keygate dev-certs` makes.
pub const DEV_CA_MARKER: &str = "keygate development CA";

fn read_certs(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError(format!(
            "{field}: cannot read {}: {}",
            path.display(),
            io_reason(&e)
        ))
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            ConfigError(format!(
                "{field}: {}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(ConfigError(format!(
            "{field}: {}: holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the CA bundle that client certificates must chain to.
pub fn client_roots(tls: &Tls) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    read_certs("tls.client_ca", &tls.client_ca)
}

/// The client certificate verifier: chains to `client_ca`, validity,
/// clientAuth usage (when the leaf has an EKU extension), CRLs for every
/// certificate below the anchor when `crl` is set.
pub fn client_verifier(
    tls: &Tls,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ConfigError> {
    let provider = Arc::new(default_provider());
    let mut roots = RootCertStore::empty();
    for (i, c) in client_roots(tls)?.into_iter().enumerate() {
        roots.add(c).map_err(|e| {
            ConfigError(format!(
                "tls.client_ca: {}: certificate #{} is not a usable CA: {e}",
                tls.client_ca.display(),
                i + 1
            ))
        })?;
    }
    let mut crls = Vec::new();
    for path in &tls.crl {
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError(format!(
                "tls.crl: cannot read {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
        for crl in CertificateRevocationListDer::pem_slice_iter(&bytes) {
            crls.push(crl.map_err(|e| {
                ConfigError(format!("tls.crl: {}: not a PEM CRL: {e}", path.display()))
            })?);
        }
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .with_crls(crls)
        .build()
        .map_err(|e| ConfigError(format!("tls.client_ca: {}: {e}", tls.client_ca.display())))
}

/// Builds the rustls server configuration: client certificate required
/// and verified against `client_ca` (and CRLs), TLS 1.2+, ALPN h2 and
/// http/1.1, no session resumption (every connection is fully verified).
pub fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, ConfigError> {
    let chain = read_certs("tls.cert", &tls.cert)?;
    let key_bytes = std::fs::read(&tls.key).map_err(|e| {
        ConfigError(format!(
            "tls.key: cannot read {}: {}",
            tls.key.display(),
            io_reason(&e)
        ))
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        ConfigError(format!(
            "tls.key: {}: no usable PEM private key: {e}",
            tls.key.display()
        ))
    })?;

    let provider = Arc::new(default_provider());
    let verifier = client_verifier(tls)?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = if tls.min_version == "1.3" {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| ConfigError(format!("tls.key: {}: {e}", tls.key.display())))?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing_key);
    if certified.keys_match().is_err() {
        return Err(ConfigError(format!(
            "tls.key: {} does not match the certificate in {} (tls.cert): give the key that belongs to it",
            tls.key.display(),
            tls.cert.display()
        )));
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| ConfigError(format!("tls.min_version: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ConfigError(format!("tls.cert: {}: {e}", tls.cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // No resumption: a resumed session would skip verification against the
    // current CAs and CRLs.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}
