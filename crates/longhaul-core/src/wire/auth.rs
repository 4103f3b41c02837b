//! Challenge-response authentication with a shared token. The token never crosses the wire:
//! each side sends a fresh random nonce (client in HELLO, node in HELLO_OK), and each proves it
//! holds the token with a keyed BLAKE3 of both nonces, the client first (AUTH), then the node
//! (AUTH_OK). A replayed AUTH is useless because the node's nonce is new every connection.

use crate::error::{Error, Result};
use crate::wire::frame::{Nonce, NONCE_LEN};

/// Tokens shorter than this are refused: a guessable token is no authentication.
pub const MIN_TOKEN_LEN: usize = 16;
const CONTEXT: &str = "longhaul 2026-11 auth v1";

/// The key derived from a shared token; the token itself is not kept.
#[derive(Clone)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Derives the key from a token (surrounding whitespace, as left by `echo > file`, is
    /// ignored).
    pub fn from_token(token: &[u8]) -> Result<Secret> {
        let t = token.trim_ascii();
        if t.len() < MIN_TOKEN_LEN {
            return Err(Error::Usage(format!("an auth token must have at least {MIN_TOKEN_LEN} characters, this one has {}", t.len())));
        }
        Ok(Secret(blake3::derive_key(CONTEXT, t)))
    }

    fn mac(&self, role: &[u8], client: &Nonce, node: &Nonce) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(role).update(client).update(node);
        *h.finalize().as_bytes()
    }

    pub fn client_proof(&self, client: &Nonce, node: &Nonce) -> [u8; 32] {
        self.mac(b"client", client, node)
    }

    pub fn node_proof(&self, client: &Nonce, node: &Nonce) -> [u8; 32] {
        self.mac(b"node", client, node)
    }

    /// Compares a proof in constant time.
    pub fn check(expected: &[u8; 32], got: &[u8; 32]) -> bool {
        blake3::Hash::from_bytes(*expected) == blake3::Hash::from_bytes(*got)
    }
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut t = [0u8; N];
    let mut filled = 0;
    while filled < N {
        // SAFETY: the pointer and length describe the unfilled tail of `t`.
        let n = unsafe { libc::getrandom(t[filled..].as_mut_ptr().cast(), N - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::io("getrandom", b"", e));
        }
        filled += n as usize;
    }
    Ok(t)
}

pub fn nonce() -> Result<Nonce> {
    random_bytes::<NONCE_LEN>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_depend_on_token_role_and_both_nonces() {
        let a = Secret::from_token(b"correct horse battery staple\n").unwrap();
        let same = Secret::from_token(b"  correct horse battery staple").unwrap();
        let b = Secret::from_token(b"correct horse battery stapler").unwrap();
        let (c, n) = ([1u8; 16], [2u8; 16]);
        assert!(Secret::check(&a.client_proof(&c, &n), &same.client_proof(&c, &n)));
        assert!(!Secret::check(&a.client_proof(&c, &n), &b.client_proof(&c, &n)));
        assert!(!Secret::check(&a.client_proof(&c, &n), &a.node_proof(&c, &n)));
        assert!(!Secret::check(&a.client_proof(&c, &n), &a.client_proof(&c, &[3u8; 16])));
        assert!(!Secret::check(&a.client_proof(&c, &n), &a.client_proof(&[3u8; 16], &n)));
    }

    #[test]
    fn short_tokens_are_refused() {
        assert_eq!(Secret::from_token(b"  short  ").unwrap_err().code(), "E_USAGE");
    }
}
