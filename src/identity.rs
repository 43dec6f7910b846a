//! Who the client is, read from its verified leaf certificate only —
//! never from intermediates, the root, or anything in the request.

use x509_parser::prelude::*;

/// The identity of a verified client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Subject common name; `None` when the subject has no CN, more than
    /// one, or one that is not UTF-8 without NUL.
    pub cn: Option<String>,
    /// Subject organizational units.
    pub ou: Vec<String>,
    /// Subject organizations.
    pub o: Vec<String>,
    /// SAN DNS names.
    pub dns: Vec<String>,
    /// SAN URIs.
    pub uris: Vec<String>,
    /// SAN email addresses.
    pub emails: Vec<String>,
    /// SHA-256 of the leaf certificate's DER, lower-case hex.
    pub fingerprint: String,
    /// SHA-256 of the DER of the CA certificate that issued the leaf.
    pub issuer: Option<String>,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: Option<i64>,
}

fn text(attr: &AttributeTypeAndValue<'_>) -> Option<String> {
    attr.as_str()
        .ok()
        .filter(|s| !s.contains('\0'))
        .map(str::to_string)
}

/// SHA-256 of `der`, lower-case hex.
pub fn sha256_hex(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

impl Identity {
    /// Reads the identity from the DER of the verified leaf certificate.
    /// `issuers` are the candidate issuing certificates (the configured CAs,
    /// then the intermediates the client sent): the first whose subject is
    /// the leaf's issuer and whose key verifies the leaf's signature is the
    /// issuer.
    pub fn from_leaf(der: &[u8], issuers: &[&[u8]]) -> Identity {
        let mut id = Identity {
            fingerprint: sha256_hex(der),
            ..Identity::default()
        };
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return id;
        };
        let subject = cert.subject();
        let cns: Vec<_> = subject.iter_common_name().collect();
        if cns.len() == 1 {
            id.cn = text(cns[0]);
        }
        id.ou = subject
            .iter_organizational_unit()
            .filter_map(text)
            .collect();
        id.o = subject.iter_organization().filter_map(text).collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                // A value with a NUL never matches, as a subject attribute
                // with one (a glob's `*` would match it).
                let (list, value) = match name {
                    GeneralName::DNSName(d) => (&mut id.dns, *d),
                    GeneralName::URI(u) => (&mut id.uris, *u),
                    GeneralName::RFC822Name(e) => (&mut id.emails, *e),
                    _ => continue,
                };
                if !value.contains('\0') {
                    list.push(value.to_string());
                }
            }
        }
        id.not_after = Some(cert.validity().not_after.timestamp());
        for candidate in issuers {
            if let Ok((_, ca)) = X509Certificate::from_der(candidate) {
                if ca.subject().as_raw() == cert.issuer().as_raw()
                    && cert.verify_signature(Some(ca.public_key())).is_ok()
                {
                    id.issuer = Some(sha256_hex(candidate));
                    break;
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
