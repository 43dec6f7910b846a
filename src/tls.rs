//! TLS: the server certificate, client certificate verification, ALPN.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};

use crate::config::{io_reason, ConfigError, Tls};

/// Marker in the subject of the CA that `keygate dev-certs` makes.
pub const DEV_CA_MARKER: &str = "keygate development CA";

/// The CRLs of `tls.crl`, each file's with its path, in order.
pub type CrlFiles = Vec<(PathBuf, Vec<CertificateRevocationListDer<'static>>)>;

/// Reads `tls.crl`. A file without a PEM CRL is refused: it would leave
/// revocation unchecked, silently (with no CRL at all, the verifier checks
/// none).
pub fn client_crls(tls: &Tls) -> Result<CrlFiles, ConfigError> {
    let mut files = Vec::new();
    for path in &tls.crl {
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError(format!(
                "tls.crl: cannot read {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
        let mut found = Vec::new();
        for crl in CertificateRevocationListDer::pem_slice_iter(&bytes) {
            found.push(crl.map_err(|e| {
                ConfigError(format!("tls.crl: {}: not a PEM CRL: {e}", path.display()))
            })?);
        }
        if found.is_empty() {
            return Err(ConfigError(format!(
                "tls.crl: {}: holds no PEM CRL (\"-----BEGIN X509 CRL-----\"; a DER one converts with `openssl crl -inform DER -outform PEM`)",
                path.display()
            )));
        }
        files.push((path.clone(), found));
    }
    Ok(files)
}

/// thisUpdate and nextUpdate (Unix seconds) of each CRL, in order: the
/// files, then the CRLs in each (those that parse: the verifier refuses a
/// configuration with one that does not).
pub fn crl_dates(crls: &CrlFiles) -> Vec<(i64, Option<i64>)> {
    crls.iter()
        .flat_map(|(_, found)| found)
        .filter_map(|der| x509_parser::parse_x509_crl(der).ok())
        .map(|(_, crl)| {
            (
                crl.last_update().timestamp(),
                crl.next_update().map(|t| t.timestamp()),
            )
        })
        .collect()
}

/// Whether `roots` hold the development CA (`keygate dev-certs`'s, whose
/// private key is public).
pub fn has_dev_ca(roots: &[CertificateDer<'_>]) -> bool {
    roots.iter().any(|der| {
        x509_parser::parse_x509_certificate(der)
            .map(|(_, c)| c.subject().to_string().contains(DEV_CA_MARKER))
            .unwrap_or(false)
    })
}

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

/// Reads the server's certificate chain (`tls.cert`).
pub fn server_chain(tls: &Tls) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    read_certs("tls.cert", &tls.cert)
}

/// A certificate's notAfter, Unix seconds (`None`: not parsable).
pub fn not_after(der: &[u8]) -> Option<i64> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.validity().not_after.timestamp())
}

/// The earliest notAfter of a chain's certificates, Unix seconds.
pub fn earliest_not_after(chain: &[CertificateDer<'_>]) -> Option<i64> {
    chain.iter().filter_map(|c| not_after(c)).min()
}

/// Reads the CA bundle that client certificates must chain to.
pub fn client_roots(tls: &Tls) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    read_certs("tls.client_ca", &tls.client_ca)
}

/// The client certificate verifier: chains to `roots` (what
/// [`client_roots`] read from `client_ca`: read once, so that the verifier
/// and whoever names a client's issuer agree on the file's contents),
/// validity, clientAuth usage (when the leaf has an EKU extension), CRLs
/// for every certificate below the anchor when `crl` is set.
pub fn client_verifier(
    tls: &Tls,
    client_roots: &[CertificateDer<'static>],
    client_crls: &CrlFiles,
) -> Result<Arc<dyn ClientCertVerifier>, ConfigError> {
    let provider = Arc::new(default_provider());
    let mut roots = RootCertStore::empty();
    for (i, c) in client_roots.iter().enumerate() {
        roots.add(c.clone()).map_err(|e| {
            ConfigError(format!(
                "tls.client_ca: {}: certificate #{} is not a usable CA: {e}",
                tls.client_ca.display(),
                i + 1
            ))
        })?;
    }
    let roots = Arc::new(roots);
    let mut crls = Vec::new();
    for (path, found) in client_crls {
        // Parsed here, so that a damaged one is named by its file.
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls(found.iter().cloned())
            .build()
            .map_err(|e| ConfigError(format!("tls.crl: {}: {e}", path.display())))?;
        crls.extend(found.iter().cloned());
    }
    WebPkiClientVerifier::builder_with_provider(roots, provider)
        .with_crls(crls)
        .build()
        .map_err(|e| ConfigError(format!("tls.client_ca: {}: {e}", tls.client_ca.display())))
}

/// Builds the rustls server configuration: client certificate required
/// and verified against `client_ca` (and CRLs), TLS 1.2+, ALPN h2 and
/// http/1.1, no session resumption (every connection is fully verified).
pub fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, ConfigError> {
    server_config_with(
        tls,
        client_verifier(tls, &client_roots(tls)?, &client_crls(tls)?)?,
    )
}

/// [`server_config`] with a client verifier already built from `tls`.
pub fn server_config_with(
    tls: &Tls,
    client_verifier: Arc<dyn ClientCertVerifier>,
) -> Result<Arc<ServerConfig>, ConfigError> {
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

    let provider = Arc::new(provider());
    let verifier: Arc<dyn ClientCertVerifier> = Arc::new(CachingVerifier::new(client_verifier));
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
    // The server's order of cipher suites decides (see `provider`).
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// ring's provider with the TLS 1.3 suites in the order keygate prefers:
/// AES-128-GCM with SHA-256 first. Its handshake hashes with SHA-256,
/// which CPUs accelerate (SHA-384 they do not: it cost 7% of a full
/// handshake), and its records need fewer AES rounds; all of ring's
/// suites stay allowed, as Go's crypto/tls orders them too.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut p = default_provider();
    let preferred = [
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
    ];
    let rest: Vec<_> = p
        .cipher_suites
        .iter()
        .filter(|s| !preferred.iter().any(|q| q.suite() == s.suite()))
        .copied()
        .collect();
    p.cipher_suites = preferred.into_iter().chain(rest).collect();
    p
}

/// The SHA-256 of a presented chain (leaf, then what the client sent
/// beside it): the key under which a verified chain, and the identity read
/// from it, are remembered.
pub fn chain_key(leaf: &[u8], intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for c in std::iter::once(leaf).chain(intermediates.iter().map(|c| c.as_ref())) {
        ctx.update(&(c.len() as u64).to_le_bytes());
        ctx.update(c);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// Chains verified at most this many at a time; the memory is cleared when
/// full.
const VERIFIED_CHAINS: usize = 4096;

/// The client certificate verifier, remembering the chains it verified.
///
/// A full handshake verifies two signatures of the client's: the chain
/// (the CA's signature on the leaf, and on each intermediate) and the
/// handshake itself (proof that the client holds the leaf's key). The
/// first depends only on the certificates and on this configuration (CAs,
/// CRLs: read once; a new configuration builds a new verifier), plus the
/// time. So a chain verified before is accepted again without checking
/// the CA's signatures, as long as the time lies within every presented
/// certificate's validity; anything else (a new chain, or a time outside
/// that window) goes through the full verification, whose answer is never
/// remembered when it refuses. The proof of possession is checked at every
/// handshake. It removes one of the three ECDSA verifications of a
/// handshake (about 16% of its cost).
#[derive(Debug)]
pub struct CachingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    /// Chain key → (latest notBefore, earliest notAfter), Unix seconds.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], (i64, i64)>>,
}

impl CachingVerifier {
    /// Wraps a full verifier.
    pub fn new(inner: Arc<dyn ClientCertVerifier>) -> CachingVerifier {
        CachingVerifier {
            inner,
            verified: Default::default(),
        }
    }

    fn window(end_entity: &[u8], intermediates: &[CertificateDer<'_>]) -> Option<(i64, i64)> {
        let mut window = (i64::MIN, i64::MAX);
        for der in std::iter::once(end_entity).chain(intermediates.iter().map(|c| c.as_ref())) {
            let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
            let v = c.validity();
            window.0 = window.0.max(v.not_before.timestamp());
            window.1 = window.1.min(v.not_after.timestamp());
        }
        Some(window)
    }
}

impl ClientCertVerifier for CachingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let key = chain_key(end_entity.as_ref(), intermediates);
        let t = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied();
        if let Some((not_before, not_after)) = known {
            if not_before <= t && t <= not_after {
                return Ok(ClientCertVerified::assertion());
            }
        }
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(window) = Self::window(end_entity.as_ref(), intermediates) {
            let mut m = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if m.len() >= VERIFIED_CHAINS {
                m.clear();
            }
            m.insert(key, window);
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

#[cfg(test)]
mod tests;
