use super::*;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use time::{Duration, OffsetDateTime};

struct Ca {
    key: KeyPair,
    cert: rcgen::Certificate,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(10);
    p.not_after = now + Duration::days(10);
    let cert = p.self_signed(&key).unwrap();
    Ca { key, cert }
}

/// A client leaf valid from `from` to `to` days from now.
fn leaf(ca: &Ca, from: i64, to: i64) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "client");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = OffsetDateTime::now_utc();
    p.not_before = now + Duration::days(from);
    p.not_after = now + Duration::days(to);
    p.signed_by(&key, &ca.cert, &ca.key).unwrap().der().clone()
}

fn verifier(ca: &Ca) -> CachingVerifier {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider()))
        .build()
        .unwrap();
    CachingVerifier::new(inner)
}

fn at(days: i64) -> UnixTime {
    let t = OffsetDateTime::now_utc() + Duration::days(days);
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.unix_timestamp() as u64))
}

fn remembered(v: &CachingVerifier) -> usize {
    v.verified.lock().unwrap().len()
}

#[test]
fn a_verified_chain_is_remembered_only_within_its_validity() {
    let good = ca("good");
    let v = verifier(&good);
    let cert = leaf(&good, -1, 1);
    assert!(v.verify_client_cert(&cert, &[], at(0)).is_ok());
    assert_eq!(remembered(&v), 1);
    // Remembered: accepted again.
    assert!(v.verify_client_cert(&cert, &[], at(0)).is_ok());
    // Past notAfter, or before notBefore: the full verification answers.
    let err = v.verify_client_cert(&cert, &[], at(2)).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. })
        ),
        "{err:?}"
    );
    let err = v.verify_client_cert(&cert, &[], at(-2)).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYetContext { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn refused_chains_are_never_remembered() {
    let good = ca("good");
    let other = ca("other");
    let v = verifier(&good);
    assert!(v
        .verify_client_cert(&leaf(&good, -1, 1), &[], at(0))
        .is_ok());
    let stranger = leaf(&other, -1, 1);
    for _ in 0..2 {
        let err = v.verify_client_cert(&stranger, &[], at(0)).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            ),
            "{err:?}"
        );
    }
    assert_eq!(remembered(&v), 1);
    // The same leaf with other certificates beside it is another chain.
    let cert = leaf(&good, -1, 1);
    assert!(v
        .verify_client_cert(&cert, &[other.cert.der().clone()], at(0))
        .is_ok());
    assert_eq!(remembered(&v), 2);
}

#[test]
fn the_memory_is_bounded() {
    let good = ca("good");
    let v = verifier(&good);
    let cert = leaf(&good, -1, 1);
    for i in 0..VERIFIED_CHAINS {
        v.verified
            .lock()
            .unwrap()
            .insert(chain_key(&i.to_le_bytes(), &[]), (0, i64::MAX));
    }
    assert!(v.verify_client_cert(&cert, &[], at(0)).is_ok());
    assert_eq!(remembered(&v), 1);
}

#[test]
fn aes_128_gcm_is_preferred() {
    let p = provider();
    assert_eq!(
        p.cipher_suites[0].suite(),
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
    );
    assert_eq!(
        p.cipher_suites.len(),
        default_provider().cipher_suites.len()
    );
}
