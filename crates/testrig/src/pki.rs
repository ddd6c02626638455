//! A test PKI for IEC 62351-3 links, made with rcgen: two CAs, server and client certificates
//! (SAN 127.0.0.1/localhost), expired, not-yet-valid, revoked and soon-expiring ones, and a CRL
//! of the CA listing the revoked ones. Everything is written as PEM into a temporary directory
//! (the CRL also as DER); private keys get mode 0600. Each certificate comes with the SHA-256
//! fingerprint of its DER, as `peer_certificates` takes it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// One end-entity certificate with its key.
#[derive(Debug, Clone)]
pub struct PkiLeaf {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8, mode 0600).
    pub key: PathBuf,
    /// SHA-256 of the certificate's DER.
    pub sha256: [u8; 32],
    /// The same as 64 lowercase hex digits.
    pub sha256_hex: String,
    /// The certificate's DER.
    pub der: Vec<u8>,
    /// The subject's common name.
    pub common_name: String,
    /// The serial number.
    pub serial: u64,
}

/// The files of a test PKI; the directory is removed on drop.
pub struct TestPki {
    dir: tempfile::TempDir,
    /// The CA that signed every certificate below unless named `other_*`.
    pub ca_cert: PathBuf,
    /// The CA's private key (mode 0600), to sign more in a test.
    pub ca_key: PathBuf,
    /// A second, unrelated CA.
    pub other_ca_cert: PathBuf,
    pub other_ca_key: PathBuf,
    /// CRL of the CA listing `revoked_client` and `revoked_server` (PEM).
    pub crl_pem: PathBuf,
    /// The same CRL as DER.
    pub crl_der: PathBuf,
    /// A CRL of the CA listing nothing (PEM).
    pub empty_crl_pem: PathBuf,
    /// Server certificate, SAN 127.0.0.1 and localhost, valid now for a year.
    pub server: PkiLeaf,
    /// Client certificate, valid now for a year.
    pub client: PkiLeaf,
    /// A second valid client certificate of the CA (e.g. not on an allow-list).
    pub client2: PkiLeaf,
    /// Server and client certificates of the other CA.
    pub other_server: PkiLeaf,
    pub other_client: PkiLeaf,
    /// Expired (validity ended 2 days ago).
    pub expired_server: PkiLeaf,
    pub expired_client: PkiLeaf,
    /// Not yet valid (validity starts in 2 days).
    pub not_yet_valid_server: PkiLeaf,
    pub not_yet_valid_client: PkiLeaf,
    /// Valid now, listed in the CRL.
    pub revoked_server: PkiLeaf,
    pub revoked_client: PkiLeaf,
    /// Valid now, expiring in 10 days (inside the default 30-day warning).
    pub expiring_server: PkiLeaf,
    pub expiring_client: PkiLeaf,
}

#[derive(Clone, Copy)]
enum Role {
    Server,
    Client,
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    /// The TLS settings of a device row presenting `own`, trusting this PKI's CA: TLS 1.2
    /// to 1.3, no allow-list, no CRL, no renewal, the default expiry warning.
    pub fn iec104_tls(&self, own: &PkiLeaf) -> config::tls104::Iec104Tls {
        config::tls104::Iec104Tls {
            ca_certificate: self.ca_cert.clone(),
            certificate: own.cert.clone(),
            private_key: own.key.clone(),
            peer_certificates: Vec::new(),
            crl_file: None,
            version_min: config::tls104::TlsVersion::V1_2,
            version_max: config::tls104::TlsVersion::V1_3,
            renewal: None,
            expiry_warning_days: config::tls104::DEFAULT_EXPIRY_WARNING_DAYS,
        }
    }

    /// Generates the whole PKI (ECDSA P-256 keys).
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = OffsetDateTime::now_utc();
        let year = Duration::days(365);
        let d = dir.path();

        let (ca, ca_cert, ca_key) = make_ca(d, "ca", "fieldbridge test CA", now);
        let (other, other_ca_cert, other_ca_key) =
            make_ca(d, "other-ca", "fieldbridge other CA", now);

        let mut serial = 100u64;
        let mut leaf =
            |ca: &Ca, name: &str, role: Role, from: OffsetDateTime, to: OffsetDateTime| {
                serial += 1;
                make_leaf(d, ca, name, role, serial, from, to)
            };
        let server = leaf(&ca, "server", Role::Server, now - year, now + year);
        let client = leaf(&ca, "client", Role::Client, now - year, now + year);
        let client2 = leaf(&ca, "client2", Role::Client, now - year, now + year);
        let other_server = leaf(&other, "other-server", Role::Server, now - year, now + year);
        let other_client = leaf(&other, "other-client", Role::Client, now - year, now + year);
        let two_days = Duration::days(2);
        let expired_server = leaf(
            &ca,
            "expired-server",
            Role::Server,
            now - year,
            now - two_days,
        );
        let expired_client = leaf(
            &ca,
            "expired-client",
            Role::Client,
            now - year,
            now - two_days,
        );
        let not_yet_valid_server = leaf(
            &ca,
            "future-server",
            Role::Server,
            now + two_days,
            now + year,
        );
        let not_yet_valid_client = leaf(
            &ca,
            "future-client",
            Role::Client,
            now + two_days,
            now + year,
        );
        let revoked_server = leaf(&ca, "revoked-server", Role::Server, now - year, now + year);
        let revoked_client = leaf(&ca, "revoked-client", Role::Client, now - year, now + year);
        let ten_days = Duration::days(10);
        let expiring_server = leaf(
            &ca,
            "expiring-server",
            Role::Server,
            now - year,
            now + ten_days,
        );
        let expiring_client = leaf(
            &ca,
            "expiring-client",
            Role::Client,
            now - year,
            now + ten_days,
        );

        let crl = |revoked: Vec<u64>, number: u64| {
            CertificateRevocationListParams {
                this_update: now - Duration::days(1),
                next_update: now + Duration::days(30),
                crl_number: SerialNumber::from(number),
                issuing_distribution_point: None,
                revoked_certs: revoked
                    .into_iter()
                    .map(|s| RevokedCertParams {
                        serial_number: SerialNumber::from(s),
                        revocation_time: now - Duration::hours(1),
                        reason_code: Some(RevocationReason::KeyCompromise),
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&ca.issuer)
            .expect("crl")
        };
        let revoked = crl(vec![revoked_server.serial, revoked_client.serial], 1);
        let crl_pem = write(d, "crl.pem", revoked.pem().expect("crl pem").as_bytes());
        let crl_der = write(d, "crl.der", revoked.der().as_ref());
        let empty = crl(Vec::new(), 2);
        let empty_crl_pem = write(d, "crl-empty.pem", empty.pem().expect("crl pem").as_bytes());

        Self {
            dir,
            ca_cert,
            ca_key,
            other_ca_cert,
            other_ca_key,
            crl_pem,
            crl_der,
            empty_crl_pem,
            server,
            client,
            client2,
            other_server,
            other_client,
            expired_server,
            expired_client,
            not_yet_valid_server,
            not_yet_valid_client,
            revoked_server,
            revoked_client,
            expiring_server,
            expiring_client,
        }
    }

    /// The temporary directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `pem` into the PKI directory as `name` (for a test's own variant of a file).
    pub fn write_file(&self, name: &str, contents: &[u8]) -> PathBuf {
        write(self.dir.path(), name, contents)
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `der`.
fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("write pki file");
    p
}

fn write_key(dir: &Path, name: &str, key: &KeyPair) -> PathBuf {
    let p = write(dir, name, key.serialize_pem().as_bytes());
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    p
}

fn make_ca(dir: &Path, name: &str, cn: &str, now: OffsetDateTime) -> (Ca, PathBuf, PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "fieldbridge tests");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(3650);
    params.not_after = now + Duration::days(3650);
    let cert = params.self_signed(&key).expect("ca cert");
    let cert_path = write(dir, &format!("{name}.pem"), cert.pem().as_bytes());
    let key_path = write_key(dir, &format!("{name}.key"), &key);
    (
        Ca {
            issuer: Issuer::new(params, key),
        },
        cert_path,
        key_path,
    )
}

fn make_leaf(
    dir: &Path,
    ca: &Ca,
    name: &str,
    role: Role,
    serial: u64,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> PkiLeaf {
    let key = KeyPair::generate().expect("key");
    let sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let mut params = CertificateParams::new(sans).expect("params");
    let common_name = format!("fieldbridge {name}");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name.as_str());
    params.extended_key_usages = match role {
        Role::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &ca.issuer).expect("leaf cert");
    let der = cert.der().as_ref().to_vec();
    let sha = sha256(&der);
    let cert_path = write(dir, &format!("{name}.pem"), cert.pem().as_bytes());
    PkiLeaf {
        key: write_key(dir, &format!("{name}.key"), &key),
        cert: cert_path,
        sha256: sha,
        sha256_hex: hex(&sha),
        der,
        common_name,
        serial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_files_with_private_keys_0600() {
        let pki = TestPki::generate();
        for leaf in [
            &pki.server,
            &pki.client,
            &pki.revoked_client,
            &pki.expired_server,
        ] {
            assert!(std::fs::read_to_string(&leaf.cert)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----"));
            let mode = std::fs::metadata(&leaf.key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            assert_eq!(leaf.sha256_hex.len(), 64);
        }
        assert!(std::fs::read_to_string(&pki.crl_pem)
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----"));
        assert_ne!(pki.server.sha256, pki.client.sha256);
    }
}
