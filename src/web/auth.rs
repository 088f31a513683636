//! HTTP basic authentication against bcrypt hashes, with a bounded cache of successful checks.
//!
//! bcrypt is slow on purpose (tens to hundreds of milliseconds per check at cost 10), so a
//! check that succeeded is remembered under a SHA-256 digest of (user, password, stored hash):
//! repeated scrapes with the right password pay bcrypt once. Failed checks are never cached.
//! Checks that do run bcrypt run one at a time, so a flood of wrong passwords costs one core at
//! most; and an unknown user is checked against a configured hash all the same, so the time
//! taken does not tell which users exist.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The value of the `WWW-Authenticate` header to send with a 401 response.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"mailflow_exporter\"";

/// The outcome of checking a request's `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authorization {
    /// No authentication is configured, or the credentials are right.
    Allowed,
    /// Authentication is configured and the request sent no `Authorization` header.
    Missing,
    /// The header is not valid basic authentication, names an unknown user, or carries a
    /// wrong password.
    Denied,
}

/// Longest `Authorization` header that is decoded at all.
const MAX_HEADER_LEN: usize = 4096;
/// How many successful checks are remembered; the cache is emptied when it is full.
const CACHE_CAPACITY: usize = 1024;

/// The configured users and the cache of successful checks.
pub(super) struct BasicAuth {
    /// User name to bcrypt hash; never empty.
    users: BTreeMap<String, String>,
    /// The hash an unknown user's password is checked against, so that it costs the same time.
    decoy: String,
    /// Digests of (user, password, hash) that passed bcrypt.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// Held while bcrypt runs, so that only one check burns CPU at a time.
    bcrypt: Mutex<()>,
}

impl BasicAuth {
    /// Basic authentication for `users` (name to bcrypt hash, already validated); `None` when
    /// there are no users.
    pub(super) fn new(users: BTreeMap<String, String>) -> Option<Self> {
        let decoy = users.values().next()?.clone();
        Some(BasicAuth {
            users,
            decoy,
            verified: Mutex::new(HashSet::new()),
            bcrypt: Mutex::new(()),
        })
    }

    /// Checks the value of an `Authorization` header.
    pub(super) fn authorize(&self, header: Option<&str>) -> Authorization {
        let Some(header) = header else {
            return Authorization::Missing;
        };
        let Some(credentials) = decode_basic(header) else {
            return Authorization::Denied;
        };
        let (user, password) = split_credentials(&credentials);
        let known = std::str::from_utf8(user)
            .ok()
            .and_then(|user| self.users.get(user));
        let Some(hash) = known else {
            // Spend the time a known user would cost, then refuse whatever the outcome.
            let _ = self.bcrypt_verify(password, &self.decoy);
            return Authorization::Denied;
        };
        let key = cache_key(user, password, hash);
        if self.lock_cache().contains(&key) {
            return Authorization::Allowed;
        }
        if !self.bcrypt_verify(password, hash) {
            return Authorization::Denied;
        }
        let mut verified = self.lock_cache();
        if verified.len() >= CACHE_CAPACITY {
            verified.clear();
        }
        verified.insert(key);
        Authorization::Allowed
    }

    /// Runs bcrypt, one check at a time.
    fn bcrypt_verify(&self, password: &[u8], hash: &str) -> bool {
        let _running = self.bcrypt.lock().unwrap_or_else(PoisonError::into_inner);
        bcrypt::verify(password, hash).unwrap_or(false)
    }

    /// The cache; a panic elsewhere while it was held leaves a set that is still consistent.
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // User names only: the hashes stay out of logs.
        f.debug_struct("BasicAuth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Checks that `hash` is a bcrypt hash this crate can verify.
pub(super) fn validate_hash(hash: &str) -> Result<(), String> {
    match hash.parse::<bcrypt::HashParts>() {
        Ok(parts) if (4..=31).contains(&parts.get_cost()) => Ok(()),
        Ok(parts) => Err(format!(
            "bcrypt cost {} is out of range 4..=31",
            parts.get_cost()
        )),
        Err(error) => Err(format!(
            "not a bcrypt hash ({error}): expected e.g. \"$2y$10$\" followed by 53 characters, \
             as `htpasswd -nBC 10 USER` prints"
        )),
    }
}

/// The decoded `user:password` of a `Basic` header, or `None` if it is not one.
fn decode_basic(header: &str) -> Option<Vec<u8>> {
    if header.len() > MAX_HEADER_LEN {
        return None;
    }
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let credentials = STANDARD.decode(token.trim_start()).ok()?;
    credentials.contains(&b':').then_some(credentials)
}

/// Splits `user:password` at the first colon (a user name cannot hold one).
fn split_credentials(credentials: &[u8]) -> (&[u8], &[u8]) {
    match credentials.iter().position(|&b| b == b':') {
        Some(colon) => (&credentials[..colon], &credentials[colon + 1..]),
        None => (credentials, &[]),
    }
}

/// A digest of (user, password, hash), each length-prefixed so that no two triples collide.
fn cache_key(user: &[u8], password: &[u8], hash: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, password, hash.as_bytes()] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    let mut key = [0; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    fn auth() -> BasicAuth {
        let mut users = BTreeMap::new();
        users.insert(
            "alice".to_owned(),
            bcrypt::hash("wonderland", 4).expect("hash"),
        );
        users.insert("bob".to_owned(), bcrypt::hash("builder", 4).expect("hash"));
        BasicAuth::new(users).expect("users")
    }

    #[test]
    fn right_password_is_allowed_and_cached() {
        let auth = auth();
        assert_eq!(
            auth.authorize(Some(&header("alice", "wonderland"))),
            Authorization::Allowed
        );
        assert_eq!(auth.lock_cache().len(), 1);
        // Served from the cache the second time.
        assert_eq!(
            auth.authorize(Some(&header("alice", "wonderland"))),
            Authorization::Allowed
        );
        assert_eq!(auth.lock_cache().len(), 1);
        assert_eq!(
            auth.authorize(Some(&header("bob", "builder"))),
            Authorization::Allowed
        );
    }

    #[test]
    fn wrong_password_is_denied_and_not_cached() {
        let auth = auth();
        assert_eq!(
            auth.authorize(Some(&header("alice", "builder"))),
            Authorization::Denied
        );
        assert_eq!(
            auth.authorize(Some(&header("alice", ""))),
            Authorization::Denied
        );
        assert!(auth.lock_cache().is_empty());
    }

    #[test]
    fn unknown_user_is_denied_even_with_a_known_password() {
        let auth = auth();
        assert_eq!(
            auth.authorize(Some(&header("mallory", "wonderland"))),
            Authorization::Denied
        );
        assert_eq!(
            auth.authorize(Some(&header("", "wonderland"))),
            Authorization::Denied
        );
        assert!(auth.lock_cache().is_empty());
    }

    #[test]
    fn missing_and_malformed_headers() {
        let auth = auth();
        assert_eq!(auth.authorize(None), Authorization::Missing);
        for bad in [
            "",
            "Basic",
            "Basic ",
            "Bearer abc",
            "Basic !!!not-base64!!!",
            // "alicewonderland": no colon.
            "Basic YWxpY2V3b25kZXJsYW5k",
            &"Basic ".repeat(1000),
        ] {
            assert_eq!(auth.authorize(Some(bad)), Authorization::Denied, "{bad:?}");
        }
        // The scheme is case-insensitive.
        let lower = header("alice", "wonderland").replacen("Basic", "basic", 1);
        assert_eq!(auth.authorize(Some(&lower)), Authorization::Allowed);
    }

    #[test]
    fn passwords_may_contain_colons() {
        let mut users = BTreeMap::new();
        users.insert("carol".to_owned(), bcrypt::hash("a:b:c", 4).expect("hash"));
        let auth = BasicAuth::new(users).expect("users");
        assert_eq!(
            auth.authorize(Some(&header("carol", "a:b:c"))),
            Authorization::Allowed
        );
    }

    #[test]
    fn no_users_means_no_basic_auth() {
        assert!(BasicAuth::new(BTreeMap::new()).is_none());
    }

    #[test]
    fn hashes_are_validated() {
        assert!(validate_hash(&bcrypt::hash("x", 4).expect("hash")).is_ok());
        assert!(
            validate_hash("$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi").is_ok()
        );
        assert!(validate_hash("plaintext").is_err());
        assert!(
            validate_hash("$2y$03$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi").is_err()
        );
    }

    #[test]
    fn cache_keys_do_not_collide_across_fields() {
        assert_ne!(cache_key(b"ab", b"c", "h"), cache_key(b"a", b"bc", "h"));
        assert_eq!(cache_key(b"a", b"b", "h"), cache_key(b"a", b"b", "h"));
    }
}
