//! WeChat signatures and the "safe mode" message encryption, as in the official
//! `WXBizMsgCrypt` SDK:
//!
//! - `signature` = hex SHA-1 over the lexicographically sorted strings concatenated (`token`,
//!   `timestamp`, `nonce`, and in safe mode the `Encrypt` text too, giving `msg_signature`);
//! - the AES key is the Base64 decoding of the 43-character `EncodingAESKey` plus `=`; the IV is
//!   its first 16 bytes; AES-256-CBC over `random(16) || len(msg) as u32 big-endian || msg ||
//!   app_id`, padded PKCS#7-style to a multiple of 32 bytes; the result Base64-encoded.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::inbound::{REDACTED, constant_time_eq};

/// WeChat's keys do not always have zero trailing bits, and the SDKs decode leniently.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// WeChat pads to a multiple of 32 bytes, not the AES block size.
const PAD_BLOCK: usize = 32;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// Hex SHA-1 over `parts` sorted and concatenated: WeChat's `signature` (token, timestamp,
/// nonce) and `msg_signature` (the same plus the `Encrypt` text).
pub fn signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut sha = Sha1::new();
    for p in sorted {
        sha.update(p.as_bytes());
    }
    hex::encode(sha.finalize())
}

/// Checks a hex signature in constant time.
pub(crate) fn check_signature(expected: &str, given: &str) -> Result<()> {
    if constant_time_eq(
        expected.as_bytes(),
        given.trim().to_ascii_lowercase().as_bytes(),
    ) {
        Ok(())
    } else {
        Err(Error::unauthenticated("WeChat signature does not match"))
    }
}

/// The safe-mode cipher of one official account.
#[derive(Clone)]
pub struct MsgCrypt {
    token: String,
    key: [u8; 32],
    app_id: String,
}

impl std::fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgCrypt")
            .field("token", &REDACTED)
            .field("key", &REDACTED)
            .field("app_id", &self.app_id)
            .finish()
    }
}

impl MsgCrypt {
    /// The cipher for `token`, the 43-character `encoding_aes_key` and `app_id`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the key is not 43 Base64 characters decoding to 32 bytes.
    pub fn new(token: &str, encoding_aes_key: &str, app_id: &str) -> Result<Self> {
        let bad = || Error::invalid("EncodingAESKey must be 43 Base64 characters");
        if encoding_aes_key.len() != 43 {
            return Err(bad());
        }
        let raw = LENIENT
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| bad())?;
        let key: [u8; 32] = raw.try_into().map_err(|_| bad())?;
        Ok(Self {
            token: token.to_owned(),
            key,
            app_id: app_id.to_owned(),
        })
    }

    /// `msg_signature` over the token, `timestamp`, `nonce` and `encrypted`.
    pub fn msg_signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        signature(&[&self.token, timestamp, nonce, encrypted])
    }

    /// Checks `msg_signature` and decrypts `encrypted` (the `Encrypt` element's text).
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] when the signature does not match, the ciphertext does not
    /// decrypt, or the message was sealed for another app id.
    pub fn verify_and_decrypt(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<String> {
        check_signature(
            &self.msg_signature(timestamp, nonce, encrypted),
            msg_signature,
        )?;
        self.decrypt(encrypted)
    }

    /// Decrypts `encrypted` and checks the app id inside.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] when it does not decrypt or names another app id.
    pub fn decrypt(&self, encrypted: &str) -> Result<String> {
        self.decrypt_parts(encrypted).map(|(_, msg)| msg)
    }

    /// Like [`MsgCrypt::decrypt`], also returning the 16 random bytes the sender put in front,
    /// so an implementation can be checked byte for byte against a published example by
    /// encrypting again with [`MsgCrypt::encrypt_with`].
    ///
    /// # Errors
    /// As [`MsgCrypt::decrypt`].
    pub fn decrypt_parts(&self, encrypted: &str) -> Result<([u8; 16], String)> {
        let bad = |why: &str| Error::unauthenticated(format!("WeChat ciphertext {why}"));
        let data = LENIENT
            .decode(encrypted.trim())
            .map_err(|_| bad("is not Base64"))?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(bad("has a bad length"));
        }
        let plain = Aes256CbcDec::new(&self.key.into(), self.key[..16].into())
            .decrypt_padded_vec_mut::<NoPadding>(&data)
            .map_err(|_| bad("does not decrypt"))?;
        let pad = usize::from(*plain.last().unwrap_or(&0));
        let pad = if (1..=PAD_BLOCK).contains(&pad) {
            pad
        } else {
            0
        };
        let body = plain
            .get(16..plain.len().saturating_sub(pad))
            .filter(|b| b.len() >= 4)
            .ok_or_else(|| bad("is too short"))?;
        let len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
        let msg = body
            .get(4..4 + len)
            .ok_or_else(|| bad("has a bad length prefix"))?;
        if &body[4 + len..] != self.app_id.as_bytes() {
            return Err(bad("was sealed for another app id"));
        }
        let mut random = [0u8; 16];
        random.copy_from_slice(&plain[..16]);
        let msg = String::from_utf8(msg.to_vec()).map_err(|_| bad("is not UTF-8"))?;
        Ok((random, msg))
    }

    /// Encrypts `message` with the given 16 random bytes (tests use fixed ones).
    pub fn encrypt_with(&self, random: [u8; 16], message: &str) -> String {
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        let mut buf = Vec::with_capacity(16 + 4 + message.len() + self.app_id.len() + PAD_BLOCK);
        buf.extend_from_slice(&random);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(message.as_bytes());
        buf.extend_from_slice(self.app_id.as_bytes());
        let pad = PAD_BLOCK - buf.len() % PAD_BLOCK;
        buf.extend(std::iter::repeat_n(pad as u8, pad));
        let sealed = Aes256CbcEnc::new(&self.key.into(), self.key[..16].into())
            .encrypt_padded_vec_mut::<NoPadding>(&buf);
        LENIENT.encode(sealed)
    }

    /// Encrypts `message` with fresh random bytes.
    pub fn encrypt(&self, message: &str) -> String {
        self.encrypt_with(*uuid::Uuid::new_v4().as_bytes(), message)
    }

    /// The encrypted reply envelope for `reply_xml`, signed for `timestamp` and `nonce`.
    pub fn seal_reply(&self, reply_xml: &str, timestamp: &str, nonce: &str) -> String {
        let encrypted = self.encrypt(reply_xml);
        let sig = self.msg_signature(timestamp, nonce, &encrypted);
        format!(
            "<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt><MsgSignature><![CDATA[{sig}]]></MsgSignature><TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{}]]></Nonce></xml>",
            super::xml::cdata_safe(nonce)
        )
    }
}
