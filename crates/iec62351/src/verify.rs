//! The certificate verifiers: rustls' WebPKI verifiers (chain to the CA, validity, key usage,
//! CRL) followed by the `peer_certificates` allow-list. The peer's name is not checked (see
//! the crate docs). Each connection gets its own verifier wrapper that keeps the end-entity
//! certificate the peer presented, so that a refusal can be logged with its subject.

use std::sync::{Arc, Mutex};

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error as TlsError, OtherError,
    SignatureScheme,
};

/// The peer's end-entity certificate is not on `peer_certificates`.
#[derive(Debug, thiserror::Error)]
#[error("the certificate is not on peer_certificates")]
pub struct NotOnAllowList;

/// What the peer presented, for the log (per connection).
pub(crate) type Presented = Arc<Mutex<Option<Vec<u8>>>>;

/// The SHA-256 fingerprints a peer must be one of (empty: any the CA signed).
#[derive(Debug, Default)]
pub(crate) struct AllowList(pub(crate) Vec<[u8; 32]>);

impl AllowList {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), TlsError> {
        if self.0.is_empty() || self.0.contains(&crate::fingerprint(end_entity.as_ref())) {
            Ok(())
        } else {
            Err(TlsError::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(NotOnAllowList)),
            )))
        }
    }
}

fn keep(presented: &Presented, end_entity: &CertificateDer<'_>) {
    let mut slot = presented.lock().unwrap_or_else(|p| p.into_inner());
    *slot = Some(end_entity.as_ref().to_vec());
}

/// The master's verifier of the outstation's certificate.
#[derive(Debug)]
pub(crate) struct OutstationVerifier {
    pub(crate) inner: Arc<WebPkiServerVerifier>,
    pub(crate) allow: Arc<AllowList>,
    pub(crate) presented: Presented,
}

impl ServerCertVerifier for OutstationVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        keep(&self.presented, end_entity);
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(_) => {}
            // the name is checked last, after the chain, validity and revocation passed;
            // IEC 104 peers are identified by certificate, not name
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        self.allow.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The slave's verifier of the master's (mandatory) client certificate.
#[derive(Debug)]
pub(crate) struct MasterVerifier {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) allow: Arc<AllowList>,
    pub(crate) presented: Presented,
}

impl ClientCertVerifier for MasterVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        keep(&self.presented, end_entity);
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.allow.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
