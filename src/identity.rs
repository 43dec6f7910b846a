//! Who the client is, read from its verified leaf certificate only.

use x509_parser::prelude::*;

/// The identity of a verified client.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// Subject common name (only when exactly one CN attribute).
    pub cn: Option<String>,
    /// SAN URIs.
    pub uris: Vec<String>,
    /// SHA-256 of the leaf certificate's DER, lower-case hex.
    pub fingerprint: String,
}

impl Identity {
    /// Reads the identity from the DER of the verified leaf certificate.
    pub fn from_leaf(der: &[u8]) -> Identity {
        let fingerprint = hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
        let mut id = Identity {
            fingerprint,
            ..Identity::default()
        };
        if let Ok((_, cert)) = X509Certificate::from_der(der) {
            let cns: Vec<_> = cert.subject().iter_common_name().collect();
            if cns.len() == 1 {
                id.cn = cns[0]
                    .as_str()
                    .ok()
                    .filter(|s| !s.contains('\0'))
                    .map(str::to_string);
            }
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                for name in &san.value.general_names {
                    if let GeneralName::URI(u) = name {
                        id.uris.push((*u).to_string());
                    }
                }
            }
        }
        id
    }

    /// A short label for logs.
    pub fn label(&self) -> &str {
        self.cn
            .as_deref()
            .or(self.uris.first().map(String::as_str))
            .unwrap_or(&self.fingerprint[..self.fingerprint.len().min(16)])
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}
