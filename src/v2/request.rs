//! One parse of a request into what everything downstream consumes: the
//! endpoint, the canonical key and etcd's typed parameters.

use super::error::{self as code, EtcdError};

/// Methods of the keys API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysMethod {
    /// GET (or a watch with `wait=true`).
    Get,
    /// HEAD: decided and answered as GET, without a body.
    Head,
    /// PUT.
    Put,
    /// POST (in-order keys).
    Post,
    /// DELETE.
    Delete,
}

impl KeysMethod {
    /// PUT, POST or DELETE.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            KeysMethod::Put | KeysMethod::Post | KeysMethod::Delete
        )
    }

    /// The method name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeysMethod::Get => "GET",
            KeysMethod::Head => "HEAD",
            KeysMethod::Put => "PUT",
            KeysMethod::Post => "POST",
            KeysMethod::Delete => "DELETE",
        }
    }

    /// Whether the method reads.
    pub fn is_read(self) -> bool {
        matches!(self, KeysMethod::Get | KeysMethod::Head)
    }
}

/// A parsed keys request.
#[derive(Clone, Debug, Default)]
pub struct KeysRequest {
    /// The method.
    pub method: Option<KeysMethod>,
    /// Canonical key: absolute, no empty, `.` or `..` segment, no trailing
    /// `/` except the root `/`.
    pub key: String,
    /// `value` (first value; empty when absent).
    pub value: String,
    /// `dir`.
    pub dir: bool,
    /// `recursive`.
    pub recursive: bool,
    /// `sorted`.
    pub sorted: bool,
    /// `wait`.
    pub wait: bool,
    /// `stream`.
    pub stream: bool,
    /// `quorum`.
    pub quorum: bool,
    /// `noValueOnSuccess`.
    pub no_value_on_success: bool,
    /// `prevValue` (empty when absent).
    pub prev_value: String,
    /// `prevIndex` (0 when absent).
    pub prev_index: u64,
    /// `prevExist`.
    pub prev_exist: Option<bool>,
    /// `refresh=true`.
    pub refresh: bool,
    /// `waitIndex` (0 when absent).
    pub wait_index: u64,
    /// `ttl` in seconds, when given and not empty.
    pub ttl: Option<u64>,
}

impl KeysRequest {
    /// The method (always set by [`parse_keys`]).
    pub fn method(&self) -> KeysMethod {
        self.method.unwrap_or(KeysMethod::Get)
    }

    /// Whether this is a watch (etcd serves `quorum=true&wait=true` as a
    /// read).
    pub fn is_watch(&self) -> bool {
        self.wait && !self.quorum && self.method() == KeysMethod::Get
    }

    /// The absolute expiration the TTL gives, from `now` (Unix ns), with
    /// Go's wrapping arithmetic.
    pub fn expiration(&self, now: i64) -> Option<i64> {
        self.ttl
            .map(|t| now.wrapping_add((t as i64).wrapping_mul(1_000_000_000)))
    }
}

/// What the path of a keys request says.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyPath {
    /// A canonical key.
    Key(String),
    /// Not clean: redirect to this path (already escaped).
    Redirect(String),
    /// Bad percent-encoding (Go's server answers a plain 400).
    BadEscape,
    /// Decoded, but not UTF-8.
    NotUtf8,
}

/// Decodes and canonicalizes the part of the raw path after `/v2/keys`.
pub fn key_path(raw_rest: &str) -> KeyPath {
    match canonical_fast(raw_rest) {
        Some(key) => KeyPath::Key(key.to_string()),
        None => key_path_general(raw_rest),
    }
}

fn key_path_general(raw_rest: &str) -> KeyPath {
    let bytes = match percent_decode(raw_rest.as_bytes(), false) {
        Some(b) => b,
        None => return KeyPath::BadEscape,
    };
    let Ok(decoded) = String::from_utf8(bytes) else {
        return KeyPath::NotUtf8;
    };
    let full = format!("/v2/keys{decoded}");
    let cleaned = clean_path(&full);
    if cleaned != full {
        // Keep the redirect under /v2/keys: clean the key alone (without
        // its trailing slash, which is put back once below).
        let key = go_clean(&format!("/{decoded}"));
        let mut loc = String::from("/v2/keys");
        if key != "/" {
            loc.push_str(&escape_path(&key));
        }
        if decoded.ends_with('/') && key != "/" {
            loc.push('/');
        }
        return KeyPath::Redirect(loc);
    }
    let key = clean_path(&format!("/{decoded}"));
    let key = if key.len() > 1 {
        key.trim_end_matches('/').to_string()
    } else {
        key
    };
    KeyPath::Key(key)
}

/// The key, when the path is already canonical and has nothing to decode
/// (the common case): no escape, no empty, `.` or `..` segment; a
/// trailing `/` is dropped.
fn canonical_fast(raw_rest: &str) -> Option<&str> {
    if raw_rest.is_empty() || raw_rest == "/" {
        return Some("/");
    }
    let body = raw_rest.strip_prefix('/')?;
    if raw_rest.contains('%') {
        return None;
    }
    let body = body.strip_suffix('/').unwrap_or(body);
    if body
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return None;
    }
    Some(&raw_rest[..body.len() + 1])
}

/// Go's `net/http` cleanPath: `path.Clean`, keeping a trailing slash.
fn clean_path(p: &str) -> String {
    let mut np = go_clean(p);
    if p.len() > 1 && p.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

/// Go's `path.Clean` for absolute paths, without recursion.
pub fn go_clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(p.len());
    for s in &parts {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Escapes a path as Go's URL.EscapedPath does.
pub fn escape_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for &b in p.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'~'
                    | b'$'
                    | b'&'
                    | b'+'
                    | b','
                    | b'/'
                    | b':'
                    | b';'
                    | b'='
                    | b'@'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space when `plus`); `None` on a bad
/// escape.
fn percent_decode(s: &[u8], plus: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        // Plain bytes are copied as one run.
        let run = s[i..]
            .iter()
            .position(|&c| c == b'%' || (plus && c == b'+'))
            .unwrap_or(s.len() - i);
        out.extend_from_slice(&s[i..i + run]);
        i += run;
        if i == s.len() {
            break;
        }
        if s[i] == b'%' {
            let h = s.get(i + 1).and_then(|c| (*c as char).to_digit(16))?;
            let l = s.get(i + 2).and_then(|c| (*c as char).to_digit(16))?;
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b' ');
            i += 1;
        }
    }
    Some(out)
}

/// Form values in etcd's precedence: body values first, then the query;
/// the first value of a name wins.
#[derive(Debug, Default)]
pub struct Form {
    pairs: Vec<(String, Vec<u8>)>,
}

impl Form {
    /// Parses `application/x-www-form-urlencoded` text the way Go's
    /// `url.ParseQuery` does, appending to this form. Returns Go's error
    /// text for the first bad pair (the others are still kept).
    pub fn parse_into(&mut self, text: &[u8]) -> Result<(), String> {
        let mut first_err = None;
        for pair in text.split(|b| *b == b'&') {
            if pair.is_empty() {
                continue;
            }
            if pair.contains(&b';') {
                first_err.get_or_insert_with(|| "invalid semicolon separator in query".into());
                continue;
            }
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            let Some(k) = percent_decode(k, true) else {
                first_err.get_or_insert_with(|| bad_escape(k));
                continue;
            };
            let Some(v) = percent_decode(v, true) else {
                first_err.get_or_insert_with(|| bad_escape(v));
                continue;
            };
            self.pairs
                .push((String::from_utf8_lossy(&k).into_owned(), v));
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The first value of `name`.
    pub fn first(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value as text (lossy; callers needing exact UTF-8 use
    /// [`Form::first_utf8`]).
    fn text(&self, name: &str) -> Option<String> {
        self.first(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The first value, which must be UTF-8.
    fn first_utf8(&self, name: &str) -> Result<String, EtcdError> {
        match self.first(name) {
            None => Ok(String::new()),
            Some(v) => String::from_utf8(v.to_vec()).map_err(|_| {
                EtcdError::request(code::INVALID_FIELD, format!("{name} is not valid UTF-8"))
            }),
        }
    }
}

fn bad_escape(s: &[u8]) -> String {
    // Go quotes the offending escape (at most three bytes from the '%').
    let pos = s.iter().position(|b| *b == b'%').unwrap_or(0);
    let end = (pos + 3).min(s.len());
    format!(
        "invalid URL escape \"{}\"",
        String::from_utf8_lossy(&s[pos..end])
    )
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses the parameters of a keys request in etcd's order of checks.
pub fn parse_params(
    method: KeysMethod,
    key: String,
    form: &Form,
) -> Result<KeysRequest, EtcdError> {
    let uint = |name: &str| -> Result<u64, EtcdError> {
        match form.text(name) {
            None => Ok(0),
            Some(v) => parse_u64(&v).ok_or_else(|| {
                EtcdError::request(code::INDEX_NAN, format!("invalid value for \"{name}\""))
            }),
        }
    };
    let boolean = |name: &str, quoted: bool| -> Result<Option<bool>, EtcdError> {
        match form.text(name) {
            None => Ok(None),
            Some(v) => parse_bool(&v).map(Some).ok_or_else(|| {
                let cause = if quoted {
                    format!("invalid value for \"{name}\"")
                } else {
                    format!("invalid value for {name}")
                };
                EtcdError::request(code::INVALID_FIELD, cause)
            }),
        }
    };
    let mut r = KeysRequest {
        method: Some(method),
        key,
        ..KeysRequest::default()
    };
    r.prev_index = uint("prevIndex")?;
    r.wait_index = uint("waitIndex")?;
    r.recursive = boolean("recursive", true)?.unwrap_or(false);
    r.sorted = boolean("sorted", true)?.unwrap_or(false);
    r.wait = boolean("wait", true)?.unwrap_or(false);
    r.dir = boolean("dir", true)?.unwrap_or(false);
    r.quorum = boolean("quorum", true)?.unwrap_or(false);
    r.stream = boolean("stream", true)?.unwrap_or(false);
    if r.wait && method != KeysMethod::Get {
        return Err(EtcdError::request(
            code::INVALID_FIELD,
            "\"wait\" can only be used with GET requests",
        ));
    }
    r.prev_value = form.first_utf8("prevValue")?;
    if form.first("prevValue").is_some() && r.prev_value.is_empty() {
        return Err(EtcdError::request(
            code::PREV_VALUE_REQUIRED,
            "\"prevValue\" cannot be empty",
        ));
    }
    r.no_value_on_success = boolean("noValueOnSuccess", true)?.unwrap_or(false);
    if let Some(t) = form.text("ttl").filter(|t| !t.is_empty()) {
        r.ttl = Some(
            parse_u64(&t)
                .ok_or_else(|| EtcdError::request(code::TTL_NAN, "invalid value for \"ttl\""))?,
        );
    }
    r.prev_exist = boolean("prevExist", false)?;
    r.value = form.first_utf8("value")?;
    if let Some(refresh) = boolean("refresh", false)? {
        r.refresh = refresh;
        if refresh {
            if !r.value.is_empty() {
                return Err(EtcdError::request(
                    code::REFRESH_VALUE,
                    "A value was provided on a refresh",
                ));
            }
            if r.ttl.is_none() {
                return Err(EtcdError::request(
                    code::REFRESH_TTL_REQUIRED,
                    "No TTL value set",
                ));
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run-copying decoder against a byte-at-a-time model, over every
    /// string of up to 4 pieces from an alphabet of plain bytes, `+`,
    /// good, short and bad escapes.
    #[test]
    fn percent_decode_agrees_with_the_simple_model() {
        fn model(s: &[u8], plus: bool) -> Option<Vec<u8>> {
            let mut out = Vec::new();
            let mut i = 0;
            while i < s.len() {
                match s[i] {
                    b'%' => {
                        let h = s.get(i + 1).and_then(|c| (*c as char).to_digit(16))?;
                        let l = s.get(i + 2).and_then(|c| (*c as char).to_digit(16))?;
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    b'+' if plus => {
                        out.push(b' ');
                        i += 1;
                    }
                    c => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            Some(out)
        }
        let alphabet: [&[u8]; 9] = [
            b"a",
            b"xyz",
            b"+",
            b"%41",
            b"%e2%9C%93",
            b"%4",
            b"%",
            b"%zz",
            b"\xff",
        ];
        let mut frontier: Vec<Vec<u8>> = vec![Vec::new()];
        let mut cases = frontier.clone();
        for _ in 0..4 {
            let mut next = Vec::new();
            for f in &frontier {
                for a in alphabet {
                    next.push([f.as_slice(), a].concat());
                }
            }
            cases.extend(next.iter().cloned());
            frontier = next;
        }
        for c in &cases {
            for plus in [false, true] {
                assert_eq!(percent_decode(c, plus), model(c, plus), "{c:?} {plus}");
            }
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_one() {
        // Every string of up to 6 characters over an alphabet that makes
        // empty, `.` and `..` segments, escapes and trailing slashes.
        let alphabet = ["/", "a", ".", "%2e", "%2F", "+", "b/"];
        let mut cases = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..6 {
            let mut next = Vec::new();
            for f in &frontier {
                for a in alphabet {
                    next.push(format!("{f}{a}"));
                }
            }
            cases.extend(next.iter().cloned());
            frontier = next;
        }
        let mut fast = 0;
        for c in &cases {
            if let Some(k) = canonical_fast(c) {
                fast += 1;
                assert_eq!(key_path_general(c), KeyPath::Key(k.to_string()), "{c:?}");
            }
        }
        assert!(fast > 1000, "the fast path took only {fast} cases");
    }

    #[test]
    fn canonical_keys() {
        assert_eq!(key_path(""), KeyPath::Key("/".into()));
        assert_eq!(key_path("/"), KeyPath::Key("/".into()));
        assert_eq!(key_path("/a/b/"), KeyPath::Key("/a/b".into()));
        assert_eq!(key_path("/a%2Fb"), KeyPath::Key("/a/b".into()));
        assert_eq!(key_path("/a//b"), KeyPath::Redirect("/v2/keys/a/b".into()));
        assert_eq!(key_path("/a//"), KeyPath::Redirect("/v2/keys/a/".into()));
        assert_eq!(key_path("/a/../b"), KeyPath::Redirect("/v2/keys/b".into()));
        assert_eq!(
            key_path("/%2e%2e/x"),
            KeyPath::Redirect("/v2/keys/x".into())
        );
        assert_eq!(key_path("/../.."), KeyPath::Redirect("/v2/keys".into()));
        assert_eq!(key_path("/%zz"), KeyPath::BadEscape);
        assert_eq!(key_path("/%ff"), KeyPath::NotUtf8);
        assert_eq!(key_path("/a%252Fb"), KeyPath::Key("/a%2Fb".into()));
    }

    #[test]
    fn deep_clean_does_not_recurse() {
        let deep = "/a".repeat(100_000);
        assert_eq!(key_path(&deep), KeyPath::Key(deep.clone()));
    }

    #[test]
    fn form_first_value_wins() {
        let mut f = Form::default();
        f.parse_into(b"value=a&value=b&x=%20+").unwrap();
        assert_eq!(f.first("value"), Some(&b"a"[..]));
        assert_eq!(f.first("x"), Some(&b"  "[..]));
        assert!(f.parse_into(b"a=%zz").is_err());
    }
}
