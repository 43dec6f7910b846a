//! `keygate dev-certs`: a development CA, a server certificate for
//! localhost and client certificates for the sample configuration.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::tls::DEV_CA_MARKER;

/// The files `dev-certs` writes.
pub const FILES: [&str; 10] = [
    "ca.pem",
    "ca-key.pem",
    "server.pem",
    "server-key.pem",
    "admin.pem",
    "admin-key.pem",
    "team-a.pem",
    "team-a-key.pem",
    "team-b.pem",
    "team-b-key.pem",
];

fn validity(p: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3652);
}

fn dn(pairs: &[(DnType, &str)]) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    for (t, v) in pairs {
        d.push(t.clone(), *v);
    }
    d
}

/// Writes the development PKI into `out`. Refuses to overwrite existing
/// files unless `force`.
pub fn generate(out: &Path, force: bool) -> Result<(), String> {
    if !force {
        for f in FILES {
            let p = out.join(f);
            if p.exists() {
                return Err(format!(
                    "{}: already exists: pass --force to replace the development certificates",
                    p.display()
                ));
            }
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| format!("{}: cannot create directory: {e}", out.display()))?;
    let e = |e: rcgen::Error| format!("certificate generation failed: {e}");

    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca = CertificateParams::default();
    validity(&mut ca);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = dn(&[
        (DnType::CommonName, DEV_CA_MARKER),
        (
            DnType::OrganizationName,
            "keygate (development only, key is public)",
        ),
    ]);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;

    let leaf = |cn: &str,
                extra: &[(DnType, &str)],
                sans: Vec<SanType>,
                eku: ExtendedKeyUsagePurpose|
     -> Result<(String, String), String> {
        let key = KeyPair::generate().map_err(e)?;
        let mut p = CertificateParams::default();
        validity(&mut p);
        let mut pairs = vec![(DnType::CommonName, cn)];
        pairs.extend_from_slice(extra);
        p.distinguished_name = dn(&pairs);
        p.subject_alt_names = sans;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![eku];
        let cert = p.signed_by(&key, &ca_cert, &ca_key).map_err(e)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let ip = SanType::IpAddress("127.0.0.1".parse().map_err(|_| "bad IP".to_string())?);
    let dns =
        |s: &str| -> Result<SanType, String> { Ok(SanType::DnsName(s.try_into().map_err(e)?)) };
    let uri = |s: &str| -> Result<SanType, String> { Ok(SanType::URI(s.try_into().map_err(e)?)) };
    let server = leaf(
        "localhost",
        &[],
        vec![dns("localhost")?, ip],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let admin = leaf(
        "ops-admin",
        &[(DnType::OrganizationalUnitName, "platform")],
        vec![],
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let team_a = leaf(
        "team-a-app",
        &[],
        vec![],
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let team_b = leaf(
        "team-b-app",
        &[],
        vec![uri("spiffe://example.org/ns/team-b/app")?],
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let files = [
        ("ca.pem", ca_cert.pem()),
        ("ca-key.pem", ca_key.serialize_pem()),
        ("server.pem", server.0),
        ("server-key.pem", server.1),
        ("admin.pem", admin.0),
        ("admin-key.pem", admin.1),
        ("team-a.pem", team_a.0),
        ("team-a-key.pem", team_a.1),
        ("team-b.pem", team_b.0),
        ("team-b-key.pem", team_b.1),
    ];
    for (name, pem) in files {
        let p = out.join(name);
        std::fs::write(&p, pem).map_err(|e| format!("{}: cannot write: {e}", p.display()))?;
    }
    Ok(())
}
