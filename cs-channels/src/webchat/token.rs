//! Signed visitor tokens: a visitor id the server issued, with an HMAC so nobody can claim
//! another visitor's history by guessing or copying an id.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies visitor tokens of the form `v1.<visitor>.<hex hmac>`.
#[derive(Clone)]
pub(crate) struct TokenSigner {
    key: Vec<u8>,
    scope: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}

impl TokenSigner {
    pub(crate) fn new(key: &[u8], scope: &str) -> Self {
        Self {
            key: key.to_vec(),
            scope: scope.to_owned(),
        }
    }

    fn mac(&self, visitor: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(self.scope.as_bytes());
        mac.update(b"\0");
        mac.update(visitor.as_bytes());
        mac
    }

    pub(crate) fn sign(&self, visitor: &str) -> String {
        let tag = self.mac(visitor).finalize().into_bytes();
        format!("v1.{visitor}.{}", hex::encode(tag))
    }

    pub(crate) fn verify(&self, token: &str) -> Result<String> {
        let mut parts = token.splitn(3, '.');
        let (Some("v1"), Some(visitor), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::unauthenticated("malformed visitor token"));
        };
        if !valid_visitor_id(visitor) {
            return Err(Error::unauthenticated("malformed visitor id"));
        }
        let tag = hex::decode(tag).map_err(|_| Error::unauthenticated("malformed token tag"))?;
        self.mac(visitor)
            .verify_slice(&tag)
            .map_err(|_| Error::unauthenticated("visitor token signature does not match"))?;
        Ok(visitor.to_owned())
    }
}

/// Visitor ids are what the shop or we chose: 1 to 128 characters without dots or whitespace.
pub(crate) fn valid_visitor_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_fail() {
        let s = TokenSigner::new(b"secret", "webchat");
        let t = s.sign("visitor-1");
        assert_eq!(s.verify(&t).unwrap(), "visitor-1");
        let forged = t.replace("visitor-1", "visitor-2");
        assert!(matches!(
            s.verify(&forged),
            Err(Error::Unauthenticated { .. })
        ));
        let other_key = TokenSigner::new(b"other", "webchat");
        assert!(other_key.verify(&t).is_err());
        let other_scope = TokenSigner::new(b"secret", "webchat-2");
        assert!(other_scope.verify(&t).is_err());
        assert!(s.verify("v1.x").is_err());
        assert!(s.verify("garbage").is_err());
        assert!(s.verify(&format!("{t}00")).is_err());
    }
}
