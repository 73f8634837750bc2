//! Sources at a URL (`POST /v1/imports` with `{"url": …}`): which addresses the server may
//! fetch from, and the fetch itself, streamed, with a size cap and a deadline.
//!
//! A URL is a way to make the server connect somewhere on the caller's behalf, so private,
//! loopback, link-local and other non-public addresses are refused unless allowlisted. The
//! check is made on the addresses a name resolves to, at connection time (by the resolver the
//! client uses, so a name that resolves differently later is checked again), and again for
//! each redirect; no proxy is used, since a proxy would resolve the name itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// A network that URL imports may reach even though it is not public: `127.0.0.1`,
/// `10.0.0.0/8`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedNet {
    addr: IpAddr,
    prefix: u8,
}

impl AllowedNet {
    /// Parses an address or a CIDR block.
    pub fn parse(text: &str) -> Result<AllowedNet, String> {
        let bad = || format!("{text:?} is not an IP address or a CIDR block (10.0.0.0/8)");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(AllowedNet { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Whether an address is on the public internet (not private, loopback, link-local, shared,
/// unspecified, multicast or broadcast).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // 0.0.0.0/8, carrier-grade NAT 100.64.0.0/10, 192.0.0.0/24, 240.0.0.0/4.
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Which addresses and buckets URL imports may reach, and how long a download may take.
#[derive(Debug, Clone)]
pub struct UrlPolicy {
    /// Non-public networks allowed all the same.
    pub allow: Vec<AllowedNet>,
    /// S3 buckets that `s3://bucket/key` URLs may name, read with the server's own S3
    /// credentials; none by default, since those credentials can reach more than a caller
    /// should.
    pub buckets: Vec<String>,
    /// Where the server keeps sources (`s3://bucket/prefix`), never readable through a URL
    /// import: that would let one workspace read another's uploads.
    pub sources_url: Option<String>,
    /// The longest a download may take, from connecting to its last byte.
    pub timeout: Duration,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        UrlPolicy {
            allow: Vec::new(),
            buckets: Vec::new(),
            sources_url: None,
            timeout: Duration::from_secs(600),
        }
    }
}

/// The bucket and key of an `s3://bucket/key` URL.
fn s3_location(url: &url::Url) -> Result<(&str, String), FetchError> {
    let bucket = url.host_str().unwrap_or("");
    let key = url.path().trim_start_matches('/');
    if bucket.is_empty() || key.is_empty() {
        return Err(FetchError::Refused(
            "an S3 URL names a bucket and a key: s3://bucket/path/to/file.csv".to_owned(),
        ));
    }
    let key = percent_encoding::percent_decode_str(key)
        .decode_utf8()
        .map_err(|_| FetchError::Refused(format!("the key {key:?} is not UTF-8")))?
        .into_owned();
    // Keys are names, not paths, but `..` segments would still read as a way out of a
    // prefix to a person checking the allowlist: refused rather than interpreted.
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(FetchError::Refused(
            "an S3 key may not hold . or .. segments".to_owned(),
        ));
    }
    Ok((bucket, key))
}

impl UrlPolicy {
    /// Whether the server may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allow.iter().any(|net| net.contains(ip))
    }

    /// Checks a URL before anything is fetched: http or https, a host, and, when the host is
    /// an address, one the policy permits; or s3 with an allowed bucket, outside the
    /// server's own sources.
    pub fn check(&self, url: &url::Url) -> Result<(), FetchError> {
        if url.scheme() == "s3" {
            return self.check_s3(url);
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Refused(format!(
                "url must be an http, https or s3 URL, not {}:",
                url.scheme()
            )));
        }
        match url.host() {
            None => Err(FetchError::Refused("url has no host".to_owned())),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip), url),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip), url),
            // A name is checked on the addresses it resolves to, when connecting.
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    fn check_s3(&self, url: &url::Url) -> Result<(), FetchError> {
        let (bucket, key) = s3_location(url)?;
        if !self.buckets.iter().any(|b| b == bucket) {
            return Err(FetchError::Refused(format!(
                "the bucket {bucket:?} is not one URL imports may read from (an operator \
                 allows buckets with --url-buckets)"
            )));
        }
        if let Some(rest) = self
            .sources_url
            .as_deref()
            .and_then(|u| u.strip_prefix("s3://"))
        {
            let (own_bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            let inside =
                prefix.is_empty() || key == prefix || key.starts_with(&format!("{prefix}/"));
            if own_bucket == bucket && inside {
                return Err(FetchError::Refused(format!(
                    "s3://{bucket}/{key} is where this server keeps uploaded sources: it cannot \
                     be imported from"
                )));
            }
        }
        Ok(())
    }

    fn check_ip(&self, ip: IpAddr, url: &url::Url) -> Result<(), FetchError> {
        if self.permits(ip) {
            Ok(())
        } else {
            Err(FetchError::Refused(private(
                url.host_str().unwrap_or(""),
                ip,
            )))
        }
    }
}

fn private(host: &str, ip: IpAddr) -> String {
    format!(
        "{host} is {ip}, a private, loopback or link-local address: the server fetches only \
         from public addresses (an operator may allow a network with --url-allow)"
    )
}

/// Why a URL cannot be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL or an address it leads to is not allowed.
    #[error("{0}")]
    Refused(String),
    /// The server answered with an error status.
    #[error("the server at the URL answered {0}")]
    Status(u16),
    /// Connecting or reading failed, or took too long.
    #[error("the URL could not be fetched: {0}")]
    Network(String),
}

/// A refusal by the resolver or the redirect policy, found again in the request's error.
#[derive(Debug)]
struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// A resolver that keeps only the addresses the policy permits.
struct GuardedResolver(Arc<UrlPolicy>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let refused = found.iter().find(|a| !policy.permits(a.ip())).copied();
            // One refused address refuses the name: which one a connection would use is not
            // ours to choose.
            if let Some(addr) = refused {
                return Err(Box::new(Refusal(private(&host, addr.ip()))) as _);
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The body of `url`, as a stream of chunks; fails at once on a refused address or an error
/// status. The deadline covers the whole download.
pub async fn fetch(
    url: &url::Url,
    policy: Arc<UrlPolicy>,
) -> Result<BoxStream<'static, Result<bytes::Bytes, String>>, FetchError> {
    policy.check(url)?;
    if url.scheme() == "s3" {
        return fetch_s3(url, policy.timeout).await;
    }
    let redirects = policy.clone();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(policy.timeout)
        .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match redirects.check(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(Refusal(format!("a redirect was refused: {e}"))),
            }
        }))
        .build()
        .map_err(|e| FetchError::Network(e.to_string()))?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| network(&e))?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    Ok(response
        .bytes_stream()
        .map(|chunk| chunk.map_err(|e| network(&e).to_string()))
        .boxed())
}

/// The object of an (allowed) `s3://bucket/key` URL, read with the server's S3 client,
/// under the same deadline as a download.
async fn fetch_s3(
    url: &url::Url,
    timeout: Duration,
) -> Result<BoxStream<'static, Result<bytes::Bytes, String>>, FetchError> {
    let (bucket, key) = s3_location(url)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let opened = tokio::time::timeout_at(deadline, crate::blob::read_s3_object(bucket, &key))
        .await
        .map_err(|_| FetchError::Network("the object store did not answer in time".into()))?;
    let (_, body) = opened.map_err(|e| match e {
        crate::blob::BlobError::Remote(object_store::Error::NotFound { .. }) => {
            FetchError::Status(404)
        }
        other => FetchError::Network(other.to_string()),
    })?;
    // A stalled object store must end the download with an error, never a short file.
    Ok(
        futures_util::stream::unfold(Some(body), move |body| async move {
            let mut body = body?;
            match tokio::time::timeout_at(deadline, body.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Some(Err(e))) => Some((Err(e.to_string()), None)),
                Ok(None) => None,
                Err(_) => Some((
                    Err(format!(
                        "the download took longer than {} seconds",
                        timeout.as_secs()
                    )),
                    None,
                )),
            }
        })
        .boxed(),
    )
}

/// A request failure with its causes; a refusal by the resolver or the redirect policy is
/// the refusal itself.
fn network(e: &reqwest::Error) -> FetchError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<Refusal>() {
            return FetchError::Refused(refusal.0.clone());
        }
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    FetchError::Network(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd12::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn an_allowlist_admits_its_networks_only() {
        let policy = UrlPolicy {
            allow: vec![
                AllowedNet::parse("127.0.0.2").expect("net"),
                AllowedNet::parse("10.0.0.0/8").expect("net"),
            ],
            ..Default::default()
        };
        assert!(policy.permits("127.0.0.2".parse().expect("ip")));
        assert!(!policy.permits("127.0.0.3".parse().expect("ip")));
        assert!(policy.permits("10.200.0.1".parse().expect("ip")));
        assert!(!policy.permits("192.168.0.1".parse().expect("ip")));
        assert!(AllowedNet::parse("10.0.0.0/33").is_err());
        assert!(AllowedNet::parse("example.com").is_err());
    }

    #[test]
    fn urls_must_be_http_with_a_permitted_address() {
        let policy = UrlPolicy::default();
        let check = |u: &str| {
            policy
                .check(&url::Url::parse(u).expect("url"))
                .map_err(|e| e.to_string())
        };
        assert!(check("https://example.com/a.csv").is_ok());
        assert!(check("file:///etc/passwd").is_err());
        assert!(check("http://127.0.0.1:8080/a.csv").is_err());
        assert!(check("http://[::1]/a.csv").is_err());
    }
}
