//! Reading a device row's TLS files and building the rustls configurations.

use std::sync::Arc;

use config::tls104::{
    load_certificates, load_crls, load_private_key, Iec104Tls, PeerCertificate, TlsFileError,
    TlsVersion,
};
use tokio_rustls::rustls::client::{Resumption, WebPkiServerVerifier};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::CertificateRevocationListDer;
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use tokio_rustls::rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio_rustls::rustls::{
    version, CipherSuite, ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion,
};

use crate::der::{summarize, CertSummary};
use crate::verify::{AllowList, MasterVerifier, OutstationVerifier, Presented};

/// Why a device's TLS cannot be set up (the applet does not start).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file is refused (unreadable, empty, a world-accessible private key).
    #[error("{column}: {source}")]
    File {
        /// The workbook column naming the file.
        column: &'static str,
        source: TlsFileError,
    },
    /// The settings do not make a usable TLS configuration.
    #[error("{0}")]
    Profile(String),
}

fn file(column: &'static str) -> impl FnOnce(TlsFileError) -> LoadError {
    move |source| LoadError::File { column, source }
}

/// The cipher suites of the IEC 62351-3 profile (AEAD only).
const PROFILE_SUITES: [CipherSuite; 6] = [
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
];

/// rustls' ring provider limited to the profile's cipher suites.
pub(crate) fn provider() -> CryptoProvider {
    let base = ring::default_provider();
    CryptoProvider {
        cipher_suites: base
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| PROFILE_SUITES.contains(&s.suite()))
            .collect(),
        ..base
    }
}

/// The versions `min..=max`.
fn versions(tls: &Iec104Tls) -> Result<Vec<&'static SupportedProtocolVersion>, LoadError> {
    let v: Vec<_> = [
        (TlsVersion::V1_2, &version::TLS12),
        (TlsVersion::V1_3, &version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (tls.version_min..=tls.version_max).contains(v))
    .map(|(_, s)| s)
    .collect();
    if v.is_empty() {
        return Err(LoadError::Profile(
            "tls_version_min is above tls_version_max".to_owned(),
        ));
    }
    Ok(v)
}

fn allow_list(tls: &Iec104Tls) -> Result<AllowList, LoadError> {
    let mut out = Vec::new();
    for p in &tls.peer_certificates {
        match p {
            PeerCertificate::Sha256(h) => out.push(*h),
            PeerCertificate::File(path) => {
                for c in load_certificates(path).map_err(file("peer_certificates"))? {
                    out.push(crate::fingerprint(c.as_ref()));
                }
            }
        }
    }
    Ok(AllowList(out))
}

/// What every connection of a device shares: the files, read and checked once.
#[derive(Debug)]
pub(crate) struct Material {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) versions: Vec<&'static SupportedProtocolVersion>,
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    pub(crate) allow: Arc<AllowList>,
    pub(crate) own: Arc<CertifiedKey>,
    /// The own certificate's subject and validity, and its fingerprint.
    pub(crate) own_summary: Option<(CertSummary, [u8; 32])>,
}

impl Material {
    pub(crate) fn load(tls: &Iec104Tls) -> Result<Self, LoadError> {
        let provider = Arc::new(provider());
        let versions = versions(tls)?;
        let mut roots = RootCertStore::empty();
        for c in load_certificates(&tls.ca_certificate).map_err(file("ca_certificate"))? {
            roots.add(c).map_err(|e| {
                LoadError::Profile(format!(
                    "ca_certificate: {}: {e}",
                    tls.ca_certificate.display()
                ))
            })?;
        }
        let crls = match &tls.crl_file {
            Some(p) => load_crls(p).map_err(file("crl_file"))?,
            None => Vec::new(),
        };
        let chain = load_certificates(&tls.certificate).map_err(file("certificate"))?;
        let own_summary = chain
            .first()
            .and_then(|c| Some((summarize(c.as_ref())?, crate::fingerprint(c.as_ref()))));
        // refused when world-accessible; the key's bytes never reach a message or a log line
        let key = load_private_key(&tls.private_key).map_err(file("private_key"))?;
        let own = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| LoadError::Profile(format!("certificate and private_key: {e}")))?;
        Ok(Self {
            provider,
            versions,
            roots: Arc::new(roots),
            crls,
            allow: Arc::new(allow_list(tls)?),
            own: Arc::new(own),
            own_summary,
        })
    }

    fn verifier_error(e: impl std::fmt::Display) -> LoadError {
        LoadError::Profile(format!("ca_certificate/crl_file: {e}"))
    }

    /// The master's side: the outstation's certificate verified; ours presented.
    pub(crate) fn client(self) -> Result<ClientMaterial, LoadError> {
        let inner =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .with_crls(self.crls.clone())
                .only_check_end_entity_revocation()
                .build()
                .map_err(Self::verifier_error)?;
        let mut base = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&self.versions)
            .map_err(|e| LoadError::Profile(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(OutstationVerifier {
                inner: inner.clone(),
                allow: self.allow.clone(),
                presented: Presented::default(),
            }))
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(self.own.clone())));
        base.resumption = Resumption::disabled();
        Ok(ClientMaterial {
            material: self,
            base,
            inner,
        })
    }

    /// The slave's side: a client certificate required and verified; ours presented.
    pub(crate) fn server(self) -> Result<ServerMaterial, LoadError> {
        let inner =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .with_crls(self.crls.clone())
                .only_check_end_entity_revocation()
                .build()
                .map_err(Self::verifier_error)?;
        let m = ServerMaterial {
            material: self,
            inner,
        };
        // a configuration the versions do not allow fails here, at load
        m.config(Presented::default())?;
        Ok(m)
    }
}

/// The master's configuration, cloned per connection with its own verifier.
#[derive(Debug)]
pub(crate) struct ClientMaterial {
    material: Material,
    base: ClientConfig,
    inner: Arc<WebPkiServerVerifier>,
}

impl AsRef<Material> for ClientMaterial {
    fn as_ref(&self) -> &Material {
        &self.material
    }
}

impl ClientMaterial {
    pub(crate) fn config(&self, presented: Presented) -> ClientConfig {
        let mut c = self.base.clone();
        c.dangerous()
            .set_certificate_verifier(Arc::new(OutstationVerifier {
                inner: self.inner.clone(),
                allow: self.material.allow.clone(),
                presented,
            }));
        c
    }
}

/// The slave's configuration, built per connection with its own verifier.
#[derive(Debug)]
pub(crate) struct ServerMaterial {
    material: Material,
    inner: Arc<dyn ClientCertVerifier>,
}

impl AsRef<Material> for ServerMaterial {
    fn as_ref(&self) -> &Material {
        &self.material
    }
}

impl ServerMaterial {
    pub(crate) fn config(&self, presented: Presented) -> Result<ServerConfig, LoadError> {
        let m = &self.material;
        let mut c = ServerConfig::builder_with_provider(m.provider.clone())
            .with_protocol_versions(&m.versions)
            .map_err(|e| LoadError::Profile(e.to_string()))?
            .with_client_cert_verifier(Arc::new(MasterVerifier {
                inner: self.inner.clone(),
                allow: m.allow.clone(),
                presented,
            }))
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(m.own.clone())));
        c.session_storage = Arc::new(NoServerSessionStorage {});
        c.send_tls13_tickets = 0;
        Ok(c)
    }
}

/// The master's rustls configuration of a device row (as each connection uses it).
pub fn client_config(tls: &Iec104Tls) -> Result<ClientConfig, LoadError> {
    Ok(Material::load(tls)?.client()?.config(Presented::default()))
}

/// The slave's rustls configuration of a device row (as each connection uses it).
pub fn server_config(tls: &Iec104Tls) -> Result<ServerConfig, LoadError> {
    Material::load(tls)?.server()?.config(Presented::default())
}
