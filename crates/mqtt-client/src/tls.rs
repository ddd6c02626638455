//! The rustls client configuration of a broker connection (ring provider).

use std::io::BufReader;
use std::sync::Arc;

use config::mqtt::TlsConfig;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};

use crate::MqttClientError;

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, MqttClientError> {
    std::fs::read(path)
        .map_err(|e| MqttClientError::Tls(format!("reading {}: {e}", path.display())))
}

fn certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, MqttClientError> {
    let bytes = read_file(path)?;
    let certs: Result<Vec<_>, _> =
        rustls_pemfile::certs(&mut BufReader::new(bytes.as_slice())).collect();
    let certs = certs.map_err(|e| MqttClientError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(MqttClientError::Tls(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

fn key(path: &std::path::Path) -> Result<PrivateKeyDer<'static>, MqttClientError> {
    let bytes = read_file(path)?;
    rustls_pemfile::private_key(&mut BufReader::new(bytes.as_slice()))
        .map_err(|e| MqttClientError::Tls(format!("{}: {e}", path.display())))?
        .ok_or_else(|| {
            MqttClientError::Tls(format!("{}: no PEM private key in it", path.display()))
        })
}

/// Builds the client config: the broker's certificate verified against the CA file (unless
/// `insecure`), and the client certificate when one is configured.
pub(crate) fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, MqttClientError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttClientError::Tls(e.to_string()))?;
    let builder = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        for cert in certs(&tls.ca_certificate)? {
            roots.add(cert).map_err(|e| {
                MqttClientError::Tls(format!("{}: {e}", tls.ca_certificate.display()))
            })?;
        }
        builder.with_root_certificates(roots)
    };
    let config = match &tls.client_auth {
        Some((cert, key_path)) => builder
            .with_client_auth_cert(certs(cert)?, key(key_path)?)
            .map_err(|e| MqttClientError::Tls(format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `tls_insecure`: accepts any broker certificate (signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
