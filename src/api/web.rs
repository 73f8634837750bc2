//! The dashboard: static files (HTML, CSS, JavaScript modules) embedded in the binary at
//! compile time and served at `/` and `/assets/{file}`. The pages talk to the native API
//! only; nothing is fetched from elsewhere, so the dashboard works offline.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// One embedded file.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
    /// A hash of the body, computed at compile time: the file's `ETag`.
    hash: u64,
}

/// FNV-1a: enough to tell two versions of a file apart, and usable in a `const`.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! assets {
    ($($name:literal => $mime:literal),+ $(,)?) => {
        const ASSETS: &[Asset] = &[$(Asset {
            name: $name,
            mime: $mime,
            body: include_bytes!(concat!("web/", $name)),
            hash: fnv1a(include_bytes!(concat!("web/", $name))),
        }),+];
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "sse.js" => "text/javascript; charset=utf-8",
    "dom.js" => "text/javascript; charset=utf-8",
    "parse.js" => "text/javascript; charset=utf-8",
    "signin.js" => "text/javascript; charset=utf-8",
    "imports.js" => "text/javascript; charset=utf-8",
    "detail.js" => "text/javascript; charset=utf-8",
    "upload.js" => "text/javascript; charset=utf-8",
    "tables.js" => "text/javascript; charset=utf-8",
}

/// Scripts, styles and requests from this origin only; no inline code, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.hash);
    // The files are not fingerprinted: browsers revalidate each time (a cheap 304), so a new
    // binary's dashboard shows up at once.
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
    ];
    let etag = HeaderValue::from_str(&etag).expect("hex is a valid header value");
    if fresh {
        return (StatusCode::NOT_MODIFIED, common, [(header::ETAG, etag)]).into_response();
    }
    (
        common,
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.mime)),
        ],
        asset.body,
    )
        .into_response()
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `GET /`: the dashboard's page.
pub async fn index(headers: HeaderMap) -> Response {
    serve(
        find("index.html").expect("index.html is embedded"),
        &headers,
    )
}

/// `GET /assets/{file}`: a script, style sheet or icon of the dashboard.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match find(&file) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::not_found("asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_has_a_distinct_name_and_a_body() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
            assert!(
                ASSETS[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
        }
    }

    #[test]
    fn a_file_answers_with_its_type_and_a_validator_then_not_modified() {
        let asset = find("app.js").unwrap();
        let first = serve(asset, &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(
            first.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, first.headers()[header::ETAG].clone());
        assert_eq!(serve(asset, &again).status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn the_page_loads_only_embedded_scripts_and_styles() {
        let page = std::str::from_utf8(find("index.html").unwrap().body).unwrap();
        for part in page.split("/assets/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                find(name).is_some(),
                "index.html links {name}, not embedded"
            );
        }
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let code = std::str::from_utf8(a.body).unwrap();
            for part in code.split("from './").skip(1) {
                let name = part.split('\'').next().unwrap();
                assert!(
                    find(name).is_some(),
                    "{} imports {name}, not embedded",
                    a.name
                );
            }
        }
    }
}
