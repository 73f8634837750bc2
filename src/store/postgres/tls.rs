//! TLS to PostgreSQL with rustls, configured as libpq is: `sslmode` and `sslrootcert` are
//! read from the database URL's parameters and taken out of it, since the client
//! crate knows only `disable`, `prefer` and `require` and no root file, and turned into a
//! connector whose certificate check matches the mode:
//!
//! | sslmode       | encrypted             | certificate checked                        |
//! |---------------|-----------------------|--------------------------------------------|
//! | `disable`     | no                    | -                                          |
//! | `prefer`      | if the server offers  | no                                         |
//! | `require`     | yes                   | no; chain only when a CA file is given     |
//! | `verify-ca`   | yes                   | chain                                      |
//! | `verify-full` | yes                   | chain and host name                        |
//!
//! Without `sslmode` a connection is `prefer`, libpq's default. The CA file comes from
//! `sslrootcert` or, failing that, `--database-ca-cert`; without one the verifying modes
//! trust the system's roots (`sslrootcert=system` asks for them explicitly, and for
//! `verify-full` by default, as libpq 16 does).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values that a rustls client honours (`allow` is not offered: it only
/// differs from `prefer` in which attempt comes first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, its certificate unchecked; plain TCP otherwise.
    Prefer,
    /// TLS always; the certificate is checked only against a given CA file.
    Require,
    /// TLS with a certificate chaining to a trusted root, whatever host it names.
    VerifyCa,
    /// TLS with a trusted certificate naming the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode, TlsError> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(TlsError::Mode(other.to_owned())),
        })
    }
}

/// The certificates a checked connection trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The system's store (`sslrootcert=system`, or no CA file given).
    System,
    /// The PEM certificates of a file.
    File(PathBuf),
}

/// The TLS settings of a database connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// How much TLS is asked for.
    pub mode: SslMode,
    /// Which certificates are trusted when the mode checks one.
    pub roots: Roots,
    /// Whether the roots were named (a CA file or `system`): `require` then checks the
    /// chain, as libpq does when it finds a root file.
    pub roots_given: bool,
}

/// A TLS setting that cannot be used: the connection is not attempted.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// An `sslmode` this client does not know.
    #[error(
        "sslmode={0:?} is not supported: use disable, prefer, require, verify-ca or verify-full"
    )]
    Mode(String),
    /// `sslrootcert=system` with a mode that would not check the certificate.
    #[error("sslrootcert=system needs sslmode=verify-full (it is given sslmode={0})")]
    SystemRootsNeedVerifyFull(&'static str),
    /// The CA file cannot be read.
    #[error("cannot read the database CA certificate file {path}: {source}")]
    ReadRoots {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds nothing usable.
    #[error("the database CA certificate file {path} holds no usable PEM certificate{detail}")]
    NoRoots { path: PathBuf, detail: String },
    /// The system has no root certificates to check a server against.
    #[error(
        "no CA certificates were found on this system to check the database server with; give \
         one with sslrootcert=FILE in the URL or --database-ca-cert FILE"
    )]
    NoSystemRoots,
    /// rustls refused the configuration.
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's parameters; answers the
/// URL the client crate reads and the TLS settings. Any other connection string is left to
/// the client crate as it is.
/// `ca_file` is the CA file given beside the URL (`--database-ca-cert`); the URL's
/// `sslrootcert` wins over it.
pub fn split(url: &str, ca_file: Option<&Path>) -> Result<(String, TlsSettings), TlsError> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (rest, pairs) = if is_url {
        split_url(url)
    } else {
        (url.to_owned(), Vec::new())
    };
    let mut mode = None;
    let mut root_cert = None;
    for (key, value) in &pairs {
        match key.as_str() {
            "sslmode" => mode = Some(SslMode::parse(value)?),
            "sslrootcert" => root_cert = Some(value.clone()),
            _ => {}
        }
    }
    let roots = match (root_cert.as_deref(), ca_file) {
        (Some("system"), _) => Some(Roots::System),
        (Some(path), _) => Some(Roots::File(PathBuf::from(path))),
        (None, Some(path)) => Some(Roots::File(path.to_owned())),
        (None, None) => None,
    };
    let mode = match (mode, &roots) {
        // libpq 16: the system's roots are for checking the host name too.
        (None, Some(Roots::System)) => SslMode::VerifyFull,
        (Some(m), Some(Roots::System)) if m != SslMode::VerifyFull => {
            return Err(TlsError::SystemRootsNeedVerifyFull(mode_name(m)));
        }
        (Some(m), _) => m,
        (None, _) => SslMode::Prefer,
    };
    let settings = TlsSettings {
        mode,
        roots_given: roots.is_some(),
        roots: roots.unwrap_or(Roots::System),
    };
    Ok((rest, settings))
}

fn mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// Whether a query parameter or key is one this module reads.
fn is_tls_key(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

/// A URL without its TLS parameters, and those parameters (percent-decoded).
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        if is_tls_key(&key) {
            taken.push((key, percent_decode(value)));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
}

/// `%XX` escapes decoded (as the client crate decodes its URL parameters: `+` stays `+`);
/// a malformed escape is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls connector for these settings; `None` for `disable`.
pub fn connector(settings: &TlsSettings) -> Result<Option<MakeRustlsConnect>, TlsError> {
    // A provider installed by the process wins; otherwise the one this build carries.
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let lenient = |chain| {
        Arc::new(Lenient {
            chain,
            algorithms: provider.signature_verification_algorithms,
        })
    };
    let verifier: Arc<dyn ServerCertVerifier> = match settings.mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer => lenient(None),
        SslMode::Require if !settings.roots_given => lenient(None),
        SslMode::Require | SslMode::VerifyCa => {
            lenient(Some(webpki(&settings.roots, provider.clone())?))
        }
        SslMode::VerifyFull => webpki(&settings.roots, provider.clone())?,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// rustls's standard check (chain, validity, host name) against these roots.
fn webpki(
    roots: &Roots,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let store = match roots {
        Roots::File(path) => file_roots(path)?,
        Roots::System => system_roots()?,
    };
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
        .build()
        .map_err(|e| TlsError::Setup(e.to_string()))
}

fn file_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadRoots {
        path: path.to_owned(),
        source,
    })?;
    let no_roots = |detail: String| TlsError::NoRoots {
        path: path.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| no_roots(format!(" ({e})")))?;
    let mut store = RootCertStore::empty();
    let (_, rejected) = store.add_parsable_certificates(certs);
    if store.is_empty() {
        return Err(no_roots(if rejected > 0 {
            format!(" ({rejected} certificate(s) could not be parsed)")
        } else {
            String::new()
        }));
    }
    Ok(store)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(found.certs);
    if store.is_empty() {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(store)
}

/// The modes that check less than rustls's standard check: `prefer` and `require` accept any
/// certificate (the connection is encrypted, not authenticated, as with libpq), `verify-ca`
/// checks the chain but not the host name (webpki checks the chain before the name, so a
/// name mismatch is only ever reported for a certificate whose chain is good). The
/// handshake's signatures are always checked, so the session keys belong to whoever holds
/// the accepted certificate's key.
#[derive(Debug)]
struct Lenient {
    /// The chain check (None: no check).
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> (String, TlsSettings) {
        split(url, None).expect("valid settings")
    }

    #[test]
    fn a_url_loses_its_tls_parameters_and_keeps_the_others() {
        let (rest, s) = settings(
            "postgres://u:p@h:5432/db?application_name=x&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        );
        assert_eq!(
            rest,
            "postgres://u:p@h:5432/db?application_name=x&connect_timeout=3"
        );
        assert_eq!(s.mode, SslMode::VerifyCa);
        assert_eq!(s.roots, Roots::File(PathBuf::from("/etc/ca.pem")));
        let (rest, s) = settings("postgresql://h/db?sslmode=disable");
        assert_eq!(rest, "postgresql://h/db");
        assert_eq!(s.mode, SslMode::Disable);
    }

    #[test]
    fn without_sslmode_a_connection_prefers_tls_as_libpq_does() {
        let (rest, s) = settings("postgres://h/db");
        assert_eq!(rest, "postgres://h/db");
        assert_eq!(s.mode, SslMode::Prefer);
        assert!(!s.roots_given);
    }

    #[test]
    fn the_ca_option_applies_unless_the_url_names_a_root_file() {
        let option = Path::new("/option.pem");
        let (_, s) = split("postgres://h/db?sslmode=require", Some(option)).unwrap();
        assert_eq!(s.roots, Roots::File(option.to_owned()));
        assert!(s.roots_given);
        let (_, s) = split("postgres://h/db?sslrootcert=/url.pem", Some(option)).unwrap();
        assert_eq!(s.roots, Roots::File(PathBuf::from("/url.pem")));
    }

    #[test]
    fn system_roots_mean_verify_full_and_refuse_weaker_modes() {
        let (_, s) = settings("postgres://h/db?sslrootcert=system");
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.roots, Roots::System);
        let e = split("postgres://h/db?sslrootcert=system&sslmode=require", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sslrootcert=system needs sslmode=verify-full (it is given sslmode=require)"
        );
    }

    #[test]
    fn an_unknown_sslmode_names_the_supported_ones() {
        let e = split("postgres://h/db?sslmode=allow", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sslmode=\"allow\" is not supported: use disable, prefer, require, verify-ca or verify-full"
        );
    }

    #[test]
    fn an_unreadable_or_empty_ca_file_is_refused_by_name() {
        let s = |path: &Path| TlsSettings {
            mode: SslMode::VerifyFull,
            roots: Roots::File(path.to_owned()),
            roots_given: true,
        };
        let missing = Path::new("/nonexistent/ca.pem");
        let e = connector(&s(missing)).err().expect("refused");
        assert!(
            e.to_string()
                .starts_with("cannot read the database CA certificate file /nonexistent/ca.pem: "),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = connector(&s(&empty)).err().expect("refused");
        assert_eq!(
            e.to_string(),
            format!(
                "the database CA certificate file {} holds no usable PEM certificate",
                empty.display()
            )
        );
    }
}
