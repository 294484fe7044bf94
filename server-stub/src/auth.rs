//! Bearer tokens. A client's token maps to its client id; tokens are kept
//! only as sha256 digests, so the database never holds a usable token.

use std::collections::HashMap;
use std::sync::RwLock;

use sha2::{Digest, Sha256};

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh random token: 256 bits from the OS (`/dev/urandom`).
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[derive(Default)]
struct TokenMaps {
    by_digest: HashMap<[u8; 32], String>,
    by_client: HashMap<String, [u8; 32]>,
}

/// The token table in memory (loaded at start, extended on issue).
#[derive(Default)]
pub struct Tokens {
    maps: RwLock<TokenMaps>,
}

impl Tokens {
    /// Sets a client's token, revoking its previous one.
    pub fn insert(&self, digest: [u8; 32], client_id: String) {
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = maps.by_client.insert(client_id.clone(), digest) {
            maps.by_digest.remove(&old);
        }
        maps.by_digest.insert(digest, client_id);
    }

    /// The client a `Authorization: Bearer <token>` header belongs to.
    pub fn client_for(&self, header: Option<&str>) -> Option<String> {
        let token = bearer_token(header?)?;
        let maps = self.maps.read().unwrap_or_else(|p| p.into_inner());
        maps.by_digest.get(&digest(token)).cloned()
    }
}

/// Whether a header carries the admin token; compares digests, so the time
/// taken does not depend on how much of the token matched.
/// An empty token never matches (`ServerCore::open` refuses an empty admin
/// token too).
pub fn is_admin(header: Option<&str>, admin_token: &str) -> bool {
    !admin_token.is_empty()
        && header
            .and_then(bearer_token)
            .is_some_and(|t| digest(t) == digest(admin_token))
}

/// The token of a `Bearer` credential; the scheme is case-insensitive
/// (RFC 7235), the token is not. None for another scheme or an empty token.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_clients_and_reissue_replaces() {
        let tokens = Tokens::default();
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        tokens.insert(digest(&a), "phone-1".into());
        assert_eq!(
            tokens.client_for(Some(&format!("Bearer {a}"))).as_deref(),
            Some("phone-1")
        );
        assert_eq!(tokens.client_for(Some(&format!("Bearer {b}"))), None);
        assert_eq!(tokens.client_for(Some(&a)), None, "scheme required");
        assert_eq!(tokens.client_for(None), None);
        tokens.insert(digest(&b), "phone-1".into());
        assert_eq!(
            tokens.client_for(Some(&format!("Bearer {a}"))),
            None,
            "old token revoked"
        );
        assert!(is_admin(Some("Bearer secret"), "secret"));
        assert!(!is_admin(Some("Bearer secre"), "secret"));
        // RFC 7235: the scheme is case-insensitive, the token is not.
        assert_eq!(
            tokens.client_for(Some(&format!("bearer {b}"))).as_deref(),
            Some("phone-1")
        );
        assert!(is_admin(Some("BEARER secret"), "secret"));
        assert!(!is_admin(Some("Bearer SECRET"), "secret"));
        assert!(!is_admin(Some("Basic secret"), "secret"));
        // An empty admin token never grants anything.
        assert!(!is_admin(Some("Bearer "), ""));
        assert!(!is_admin(Some("Bearer"), ""));
    }
}
