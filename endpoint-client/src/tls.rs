//! TLS for the terminal's connections to the server (`https://` REST, `wss://` signaling): one
//! rustls client configuration with the ring provider, trusting the system's store
//! (`/etc/ssl/certs`) plus, optionally, the deployment's own CA from `tls_ca_file` (government
//! networks often run a private CA). Set once at start with [`init`]; every HTTP client and the
//! WebSocket use it.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("无法读取 CA 证书文件 (cannot read the CA file) {0}: {1}")]
    CaFile(String, String),
    #[error("CA 证书文件中没有可用的证书 (no usable certificate in) {0}")]
    NoCertificate(String),
}

static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Builds the client configuration: system roots, plus the PEM certificates of `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "a system certificate could not be loaded");
    }
    let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| TlsError::CaFile(shown.clone(), e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::CaFile(shown.clone(), e.to_string()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsError::NoCertificate(shown));
        }
    }
    Ok(Arc::new(builder().with_root_certificates(roots).with_no_client_auth()))
}

/// A config builder on the ring provider (installed as the process default, so every rustls
/// user in the process agrees).
fn builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    rustls::ClientConfig::builder()
}

/// Sets the configuration for the process (first call wins).
pub fn init(ca_file: Option<&Path>) -> Result<(), TlsError> {
    let cfg = client_config(ca_file)?;
    let _ = CONFIG.set(cfg);
    Ok(())
}

/// The process's configuration ([`init`]ialised with the system roots if nobody did).
pub fn config() -> Arc<rustls::ClientConfig> {
    CONFIG
        .get_or_init(|| {
            client_config(None).unwrap_or_else(|e| {
                tracing::error!(error = %e, "TLS setup failed; https connections will fail");
                Arc::new(
                    builder().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth(),
                )
            })
        })
        .clone()
}

/// An HTTP client builder that speaks TLS with [`config`].
pub fn http(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder().use_preconfigured_tls((*config()).clone()).timeout(timeout)
}

/// The WebSocket connector for `wss://`.
pub fn ws_connector() -> tokio_tungstenite::Connector {
    tokio_tungstenite::Connector::Rustls(config())
}
