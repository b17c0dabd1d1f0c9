//! The client's TLS: rustls on the *ring* provider, so that building the client needs no
//! CMake (reqwest's own default, aws-lc-rs, builds aws-lc-sys with it), unless the process
//! chose a provider itself.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls_platform_verifier::BuilderVerifierExt as _;

/// The TLS settings of the client's connections: the process's default rustls provider
/// when the application installed one (aws-lc-rs for FIPS, say), otherwise *ring*; the
/// operating system's certificate verifier, as reqwest's own rustls setting uses.
///
/// The provider is chosen here rather than installed process-wide, so that an application
/// installing its own default after building a client still succeeds.
pub(crate) fn config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth())
}
