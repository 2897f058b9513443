//! AWS Signature Version 4 (header signing), for Bedrock and any other non-S3 service,
//! with an injectable clock; and [`verify`], which checks a signed request given the
//! secret (what a test upstream does).
//!
//! The canonical request is
//!
//! ```text
//! METHOD \n canonical URI \n canonical query \n canonical headers \n \n signed headers \n payload hash
//! ```
//!
//! - URI: with [`UriEncoding::Double`] (every service but S3) each byte of the path as it
//!   is sent, `%` included, is percent-encoded again except unreserved characters and
//!   `/`: a Bedrock model id `a:b` travels as `a%3Ab` and is signed as `a%253Ab`. With
//!   [`UriEncoding::Single`] the path is decoded and encoded once (S3, and the AWS test
//!   suite's raw UTF-8 and space paths). Dot segments and empty segments are removed
//!   when normalizing.
//! - Query: each name and value decoded, encoded strictly (RFC 3986 unreserved kept),
//!   sorted by name then value.
//! - Headers: every header present, lowercase names, values trimmed with inner runs of
//!   spaces collapsed, repeated headers joined with `,`, sorted; except hop-by-hop and
//!   tracing headers ([`UNSIGNED_HEADERS`]). `host` and `x-amz-date` are added when
//!   missing, and `x-amz-security-token` when the credentials have a session token.
//!
//! Sign last: a header changed after signing breaks the signature, one added after it is
//! merely unsigned.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, header};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The algorithm name.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Headers never signed: hop-by-hop headers a proxy or client may rewrite, and tracing
/// headers added on the way.
pub const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "traceparent",
    "tracestate",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
];

/// AWS credentials. `Debug` never shows the secret or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl Credentials {
    /// Credentials from their parts (the session token of temporary credentials).
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }

    /// The access key id (not a secret).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The session token, if any.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// How the path is encoded in the canonical request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UriEncoding {
    /// Every service but S3: the sent path encoded once more.
    #[default]
    Double,
    /// S3: the path decoded, then encoded once.
    Single,
}

/// Signing settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Path encoding.
    pub uri_encoding: UriEncoding,
    /// Remove `.`, `..` and empty path segments (every service but S3).
    pub normalize_path: bool,
    /// Also send and sign `x-amz-content-sha256`.
    pub content_sha256_header: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            uri_encoding: UriEncoding::Double,
            normalize_path: true,
            content_sha256_header: false,
        }
    }
}

/// What to sign for.
#[derive(Clone, Copy, Debug)]
pub struct SigningParams<'a> {
    /// Credentials.
    pub credentials: &'a Credentials,
    /// Region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Service, e.g. `bedrock`.
    pub service: &'a str,
    /// The signing time (injectable for tests).
    pub time: SystemTime,
    /// Settings.
    pub settings: Settings,
}

/// Why a request cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// No `Host` header and no authority in the URI.
    #[error("the request has no host to sign")]
    NoHost,
    /// A credential or computed value is not a valid header value.
    #[error("`{0}` is not a valid header value")]
    BadHeaderValue(&'static str),
    /// The signing time is before 1970.
    #[error("the signing time is before the Unix epoch")]
    BadTime,
}

/// The intermediate values of a signature, for tests and debugging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The canonical request.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// The signature (hex).
    pub signature: String,
    /// The `Authorization` header value.
    pub authorization: String,
}

/// Signs `request` (body included): adds `host`, `x-amz-date`, `x-amz-security-token`
/// (with a session token), `x-amz-content-sha256` (when set) and `authorization`.
pub fn sign<B: AsRef<[u8]>>(
    request: &mut Request<B>,
    params: &SigningParams<'_>,
) -> Result<Signature, SigningError> {
    let method = request.method().clone();
    let uri = request.uri().clone();
    // The body is hashed first; the headers are then changed in place.
    let payload_hash = hex::encode(Sha256::digest(request.body().as_ref()));
    sign_hashed(&method, &uri, request.headers_mut(), &payload_hash, params)
}

/// [`sign`] on a request's parts.
pub fn sign_parts(
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    params: &SigningParams<'_>,
) -> Result<Signature, SigningError> {
    let payload_hash = hex::encode(Sha256::digest(body));
    sign_hashed(method, uri, headers, &payload_hash, params)
}

fn sign_hashed(
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    payload_hash: &str,
    params: &SigningParams<'_>,
) -> Result<Signature, SigningError> {
    let amz_date = amz_date(params.time)?;
    if !headers.contains_key(header::HOST) {
        let host = host_of(uri).ok_or(SigningError::NoHost)?;
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&host).map_err(|_| SigningError::BadHeaderValue("host"))?,
        );
    }
    headers.insert(
        "x-amz-date",
        HeaderValue::from_str(&amz_date).map_err(|_| SigningError::BadHeaderValue("x-amz-date"))?,
    );
    headers.remove(header::AUTHORIZATION);
    if let Some(token) = params.credentials.session_token() {
        let mut v = HeaderValue::from_str(token)
            .map_err(|_| SigningError::BadHeaderValue("x-amz-security-token"))?;
        v.set_sensitive(true);
        headers.insert("x-amz-security-token", v);
    }
    if params.settings.content_sha256_header {
        headers.insert(
            "x-amz-content-sha256",
            HeaderValue::from_str(payload_hash)
                .map_err(|_| SigningError::BadHeaderValue("x-amz-content-sha256"))?,
        );
    }
    let signed: Vec<String> = signable_headers(headers);
    let sig = compute(
        method,
        uri,
        headers,
        &signed,
        payload_hash,
        &amz_date,
        params.region,
        params.service,
        &params.credentials.secret_access_key,
        params.settings,
    );
    let authorization = format!(
        "{ALGORITHM} Credential={}/{}/{}/{}/aws4_request, SignedHeaders={}, Signature={}",
        params.credentials.access_key_id,
        &amz_date[..8],
        params.region,
        params.service,
        signed.join(";"),
        sig.signature,
    );
    let mut v = HeaderValue::from_str(&authorization)
        .map_err(|_| SigningError::BadHeaderValue("authorization"))?;
    v.set_sensitive(true);
    headers.insert(header::AUTHORIZATION, v);
    Ok(Signature {
        authorization,
        ..sig
    })
}

/// `host[:port]` of a URI, the port left out when it is the scheme's default.
fn host_of(uri: &Uri) -> Option<String> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    };
    Some(match uri.port_u16() {
        Some(p) if Some(p) != default_port => format!("{host}:{p}"),
        _ => host.to_owned(),
    })
}

/// The lowercase names of the headers to sign, sorted and unique.
fn signable_headers(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| !UNSIGNED_HEADERS.contains(&k.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[allow(clippy::too_many_arguments)]
fn compute(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed: &[String],
    payload_hash: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    secret: &str,
    settings: Settings,
) -> Signature {
    let mut creq = String::with_capacity(512);
    creq.push_str(method.as_str());
    creq.push('\n');
    creq.push_str(&canonical_uri(uri.path(), settings));
    creq.push('\n');
    creq.push_str(&canonical_query(uri.query().unwrap_or("")));
    creq.push('\n');
    for name in signed {
        creq.push_str(name);
        creq.push(':');
        let mut first = true;
        for v in headers.get_all(name.as_str()) {
            if !first {
                creq.push(',');
            }
            first = false;
            push_header_value(&mut creq, v.as_bytes());
        }
        creq.push('\n');
    }
    creq.push('\n');
    creq.push_str(&signed.join(";"));
    creq.push('\n');
    creq.push_str(payload_hash);

    let date = &amz_date[..8.min(amz_date.len())];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(creq.as_bytes()))
    );
    let key = signing_key(secret, date, region, service);
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    Signature {
        canonical_request: creq,
        string_to_sign,
        signature,
        authorization: String::new(),
    }
}

/// A header value trimmed, inner runs of spaces collapsed to one.
fn push_header_value(out: &mut String, value: &[u8]) {
    let text = String::from_utf8_lossy(value);
    let mut words = text.split([' ', '\t']).filter(|w| !w.is_empty());
    if let Some(first) = words.next() {
        out.push_str(first);
        for w in words {
            out.push(' ');
            out.push_str(w);
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The signing key of a secret for one day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The canonical URI of a path as sent.
pub fn canonical_uri(path: &str, settings: Settings) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let normalized;
    let path = if settings.normalize_path {
        normalized = normalize(path);
        normalized.as_str()
    } else {
        path
    };
    match settings.uri_encoding {
        UriEncoding::Double => encode(path.as_bytes(), false),
        UriEncoding::Single => encode(&decode(path), false),
    }
}

/// Removes `.`, `..` and empty segments; keeps a trailing slash.
fn normalize(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || (path.ends_with('/') && !segments.is_empty()) {
        out.push('/');
    }
    out
}

/// The canonical query string.
pub fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(&decode(k), true), encode(&decode(v), true))
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(query.len() + 16);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Percent-encodes all but RFC 3986 unreserved characters (and `/` unless
/// `encode_slash`), with uppercase hex.
fn encode(bytes: &[u8], encode_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() + 8);
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (b == b'/' && !encode_slash)
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// Percent-decodes (a `%` not followed by two hex digits stays as it is).
fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `YYYYMMDDTHHMMSSZ` of a time.
pub fn amz_date(time: SystemTime) -> Result<String, SigningError> {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SigningError::BadTime)?
        .as_secs();
    let days = i64::try_from(secs / 86_400).map_err(|_| SigningError::BadTime)?;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    Ok(format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is in 1..=31 and m in 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Why a signed request does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `Authorization` header, or not a SigV4 one.
    #[error("missing or malformed SigV4 Authorization header")]
    Malformed,
    /// No `x-amz-date` header.
    #[error("missing x-amz-date")]
    NoDate,
    /// Another access key signed it.
    #[error("signed by access key `{0}`")]
    WrongKey(String),
    /// The credential scope is not this date, region or service.
    #[error("credential scope `{0}` does not match")]
    WrongScope(String),
    /// A header that must be signed is not.
    #[error("`{0}` is not signed")]
    Unsigned(&'static str),
    /// The session token is missing or wrong.
    #[error("wrong or missing x-amz-security-token")]
    WrongToken,
    /// The signature is wrong.
    #[error("signature mismatch; the canonical request computed was:\n{0}")]
    Mismatch(String),
}

/// Checks that a request (its parts and body) is signed by `credentials` for `region` and
/// `service` (the signing time is taken from its `x-amz-date`; clock skew is not
/// checked).
pub fn verify(
    request: &http::request::Parts,
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    service: &str,
    settings: Settings,
) -> Result<(), VerifyError> {
    let (method, uri, headers) = (&request.method, &request.uri, &request.headers);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(ALGORITHM))
        .ok_or(VerifyError::Malformed)?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for field in auth.split(',') {
        let (k, v) = field.trim().split_once('=').ok_or(VerifyError::Malformed)?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return Err(VerifyError::Malformed),
        }
    }
    let (credential, signed, signature) = match (credential, signed, signature) {
        (Some(c), Some(s), Some(g)) => (c, s, g),
        _ => return Err(VerifyError::Malformed),
    };
    let (key_id, scope) = credential.split_once('/').ok_or(VerifyError::Malformed)?;
    if key_id != credentials.access_key_id {
        return Err(VerifyError::WrongKey(key_id.to_owned()));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .filter(|d| d.len() == 16)
        .ok_or(VerifyError::NoDate)?;
    if scope != format!("{}/{region}/{service}/aws4_request", &amz_date[..8]) {
        return Err(VerifyError::WrongScope(scope.to_owned()));
    }
    let signed: Vec<String> = signed.split(';').map(str::to_owned).collect();
    for required in ["host", "x-amz-date"] {
        if !signed.iter().any(|s| s == required) {
            return Err(VerifyError::Unsigned(required));
        }
    }
    if let Some(token) = credentials.session_token() {
        if headers
            .get("x-amz-security-token")
            .map(HeaderValue::as_bytes)
            != Some(token.as_bytes())
        {
            return Err(VerifyError::WrongToken);
        }
        if !signed.iter().any(|s| s == "x-amz-security-token") {
            return Err(VerifyError::Unsigned("x-amz-security-token"));
        }
    }
    let payload_hash = hex::encode(Sha256::digest(body));
    let expected = compute(
        method,
        uri,
        headers,
        &signed,
        &payload_hash,
        amz_date,
        region,
        service,
        &credentials.secret_access_key,
        settings,
    );
    if constant_time_eq(expected.signature.as_bytes(), signature.as_bytes()) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch(expected.canonical_request))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(t).expect("date"), "20150830T123600Z");
        assert_eq!(amz_date(UNIX_EPOCH).expect("date"), "19700101T000000Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(amz_date(leap).expect("date"), "20000229T000000Z");
    }

    #[test]
    fn paths() {
        let d = Settings::default();
        assert_eq!(
            canonical_uri("/model/a%3Ab/converse", d),
            "/model/a%253Ab/converse"
        );
        assert_eq!(canonical_uri("//example//", d), "/example/");
        assert_eq!(canonical_uri("/./a/../b/", d), "/b/");
        assert_eq!(canonical_uri("", d), "/");
        let s = Settings {
            uri_encoding: UriEncoding::Single,
            ..d
        };
        assert_eq!(canonical_uri("/example%20space/", s), "/example%20space/");
        assert_eq!(canonical_query("b=2&a=%7e&a=1"), "a=1&a=~&b=2");
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::new("AKID", "very-secret", Some("token-secret".to_owned()));
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID"));
        assert!(!shown.contains("very-secret") && !shown.contains("token-secret"));
    }
}
