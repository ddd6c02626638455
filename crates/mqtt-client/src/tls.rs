//! The rustls client configuration of a broker connection (ring provider). The TLS files are
//! read here, when the applet starts on the gateway (validation only checks the columns: a
//! config is often validated on another machine); a missing or unreadable file is an error
//! naming its column and path, and the applet does not start.

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

fn read_file(column: &str, path: &std::path::Path) -> Result<Vec<u8>, MqttClientError> {
    std::fs::read(path)
        .map_err(|e| MqttClientError::Tls(format!("{column}: reading {}: {e}", path.display())))
}

fn certs(
    column: &str,
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, MqttClientError> {
    let bytes = read_file(column, path)?;
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
    let bytes = read_file("client_key", path)?;
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
        for cert in certs("ca_certificate", &tls.ca_certificate)? {
            roots.add(cert).map_err(|e| {
                MqttClientError::Tls(format!("{}: {e}", tls.ca_certificate.display()))
            })?;
        }
        builder.with_root_certificates(roots)
    };
    let config = match &tls.client_auth {
        Some((cert, key_path)) => builder
            .with_client_auth_cert(certs("client_certificate", cert)?, key(key_path)?)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_missing_file_names_its_column_and_path() {
        let tls = TlsConfig {
            ca_certificate: "/nonexistent/ca.pem".into(),
            client_auth: None,
            insecure: false,
        };
        let e = client_config(&tls).map(|_| ()).unwrap_err().to_string();
        assert!(
            e.contains("ca_certificate") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
    }
}
