//! Tokens: HS256 JSON Web Tokens, checked before any map data flows (SPEC section 8).
//!
//! Only HS256 is accepted: the header must name it, so a token cannot pick a weaker algorithm
//! (`none`) or make the server read the shared secret as a public key. `exp` is required and
//! enforced: a token that never expires cannot be withdrawn. The signature is compared in constant
//! time by `hmac`. The optional claims `read` and `write` list the maps the holder may read and
//! write (`"*"` all, a name ending in `*` a prefix); a missing claim means every map.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::Value as Json;
use sha2::Sha256;

/// What a valid token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: who holds it, for the logs.
    pub subject: Option<String>,
    /// `exp`: when it stops being valid, in seconds since the Unix epoch.
    pub expires: u64,
    /// `read`: the map patterns it may read; `None` for every map.
    pub read: Option<Vec<String>>,
    /// `write`: the map patterns it may write; `None` for every map.
    pub write: Option<Vec<String>>,
}

/// Why a token was refused; the message is sent to the client in the error frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The server needs a token and the handshake carried none.
    Missing,
    /// Not three base64url parts of JSON, or a claim of the wrong type.
    Malformed(String),
    /// The header names another algorithm than HS256.
    Algorithm(String),
    /// The signature does not match: forged, or signed with another secret.
    Signature,
    /// `exp` is missing.
    NoExpiry,
    /// `exp` has passed.
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The server's time.
        now: u64,
    },
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("this server needs a token (an HS256 JWT) in the handshake"),
            Self::Malformed(why) => write!(f, "the token is malformed: {why}"),
            Self::Algorithm(alg) => write!(f, "the token's algorithm is {alg:?}; only HS256 is accepted"),
            Self::Signature => {
                f.write_str("the token's signature does not match (forged, or signed with another secret)")
            }
            Self::NoExpiry => f.write_str("the token has no exp claim; tokens must expire"),
            Self::Expired { exp, now } => write!(f, "the token expired at {exp} (now {now}, seconds since the epoch)"),
        }
    }
}

impl std::error::Error for AuthError {}

/// Checks `token` against `secret` at `now` (seconds since the Unix epoch).
pub fn verify(token: &str, secret: &[u8], now: u64) -> Result<Claims, AuthError> {
    let malformed = |why: &str| AuthError::Malformed(why.to_owned());
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a JWT has three parts separated by dots"));
    };
    let header: Json = decode_json(header, "header")?;
    match header.get("alg").and_then(Json::as_str) {
        Some("HS256") => {}
        Some(other) => return Err(AuthError::Algorithm(other.to_owned())),
        None => return Err(malformed("the header has no alg")),
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed("the signature is not base64url"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| malformed("the secret cannot key HMAC"))?;
    mac.update(&token.as_bytes()[..header_and_payload_len(token)]);
    mac.verify_slice(&signature).map_err(|_| AuthError::Signature)?;
    // Only a token whose signature holds is read further.
    let claims: Json = decode_json(payload, "payload")?;
    let expires = match claims.get("exp") {
        None => return Err(AuthError::NoExpiry),
        Some(exp) => exp.as_u64().ok_or_else(|| malformed("exp is not a whole number of seconds"))?,
    };
    if expires <= now {
        return Err(AuthError::Expired { exp: expires, now });
    }
    let subject = match claims.get("sub") {
        None => None,
        Some(sub) => Some(sub.as_str().ok_or_else(|| malformed("sub is not a string"))?.to_owned()),
    };
    Ok(Claims { subject, expires, read: names(&claims, "read")?, write: names(&claims, "write")? })
}

/// The length of `header.payload`, the signed part.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn decode_json(part: &str, what: &str) -> Result<Json, AuthError> {
    let bytes =
        URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthError::Malformed(format!("the {what} is not base64url")))?;
    let json: Json =
        serde_json::from_slice(&bytes).map_err(|e| AuthError::Malformed(format!("the {what} is not JSON: {e}")))?;
    if !json.is_object() {
        return Err(AuthError::Malformed(format!("the {what} is not a JSON object")));
    }
    Ok(json)
}

/// A list-of-map-names claim: absent means every map.
fn names(claims: &Json, claim: &str) -> Result<Option<Vec<String>>, AuthError> {
    let Some(value) = claims.get(claim) else { return Ok(None) };
    let wrong = || AuthError::Malformed(format!("{claim} must be a list of map names"));
    let list = value.as_array().ok_or_else(wrong)?;
    list.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(wrong)).collect::<Result<_, _>>().map(Some)
}

/// Signs `claims` (a JSON object) with `secret`: for tests and for tools that mint tokens.
pub fn sign(claims: &Json, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"a secret of the server";
    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_signed_unexpired_token_gives_its_claims() {
        let token = sign(&json!({"sub": "ann", "exp": NOW + 60, "read": ["*"], "write": ["todos", "tags*"]}), SECRET);
        let claims = verify(&token, SECRET, NOW).expect("valid");
        assert_eq!(claims.subject.as_deref(), Some("ann"));
        assert_eq!(claims.read, Some(vec!["*".to_owned()]));
        assert_eq!(claims.write, Some(vec!["todos".to_owned(), "tags*".to_owned()]));
        let all = verify(&sign(&json!({"exp": NOW + 1}), SECRET), SECRET, NOW).expect("valid");
        assert_eq!((all.read, all.write), (None, None), "missing claims mean every map");
    }

    #[test]
    fn forged_expired_and_malformed_tokens_are_refused() {
        let good = sign(&json!({"exp": NOW + 60}), SECRET);
        assert_eq!(verify(&good, b"another secret", NOW), Err(AuthError::Signature));
        // The payload swapped for one granting more, the signature kept.
        let (head, rest) = good.split_once('.').expect("dots");
        let signature = rest.rsplit_once('.').expect("dots").1;
        let forged = format!("{head}.{}.{signature}", URL_SAFE_NO_PAD.encode(json!({"exp": NOW + 9999}).to_string()));
        assert_eq!(verify(&forged, SECRET, NOW), Err(AuthError::Signature));
        assert_eq!(
            verify(&sign(&json!({"exp": NOW}), SECRET), SECRET, NOW),
            Err(AuthError::Expired { exp: NOW, now: NOW })
        );
        assert_eq!(verify(&sign(&json!({"sub": "x"}), SECRET), SECRET, NOW), Err(AuthError::NoExpiry));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(json!({"exp": NOW + 60}).to_string())
        );
        assert_eq!(verify(&none, SECRET, NOW), Err(AuthError::Algorithm("none".into())));
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.x"] {
            assert!(matches!(verify(bad, SECRET, NOW), Err(AuthError::Malformed(_))), "{bad:?}");
        }
        let wrong_type = sign(&json!({"exp": NOW + 60, "write": "todos"}), SECRET);
        assert!(matches!(verify(&wrong_type, SECRET, NOW), Err(AuthError::Malformed(m)) if m.contains("write")));
    }
}
