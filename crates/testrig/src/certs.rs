//! Test certificates made with rcgen: a CA, a server certificate for 127.0.0.1/localhost and
//! a client certificate, written as PEM files into a temporary directory.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

use crate::TlsFiles;

/// PEM files of a test PKI; the directory is removed on drop.
pub struct TestCerts {
    _dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A second CA that signed nothing here (to test that verification fails).
    pub other_ca_cert: PathBuf,
}

impl TestCerts {
    /// Generates the CA, server (SAN 127.0.0.1, localhost) and client certificates.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).expect("write pem");
            p
        };
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "fieldbridge test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
        let ca_pem = ca_cert.pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("key");
        let mut sp = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params");
        sp.distinguished_name.push(DnType::CommonName, "localhost");
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = sp.signed_by(&server_key, &issuer).expect("server cert");

        let client_key = KeyPair::generate().expect("key");
        let mut cp = CertificateParams::new(Vec::<String>::new()).expect("params");
        cp.distinguished_name
            .push(DnType::CommonName, "fieldbridge-client");
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = cp.signed_by(&client_key, &issuer).expect("client cert");

        let other_key = KeyPair::generate().expect("key");
        let mut op = CertificateParams::new(Vec::<String>::new()).expect("params");
        op.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        op.distinguished_name
            .push(DnType::CommonName, "some other CA");
        let other = op.self_signed(&other_key).expect("other ca");

        Self {
            ca_cert: write("ca.pem", ca_pem),
            server_cert: write("server.pem", server_cert.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.pem", client_cert.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            other_ca_cert: write("other-ca.pem", other.pem()),
            _dir: dir,
        }
    }

    /// The files of a mosquitto TLS listener using the server certificate.
    pub fn server_files(&self, require_client_certificate: bool) -> TlsFiles {
        TlsFiles {
            ca_file: self.ca_cert.clone(),
            cert_file: self.server_cert.clone(),
            key_file: self.server_key.clone(),
            require_certificate: require_client_certificate,
        }
    }
}
