//! Encryption of stored objects and partial uploads.
//!
//! **Objects** (envelope encryption): every object has its own random 256-bit data key, wrapped
//! by the master key ([`crate::pii::Pii::wrap_key`]) and kept in the database. The plaintext is
//! cut into [`SEGMENT`]-byte segments, each sealed with AES-256-GCM under a nonce made of the
//! segment's index and a "last segment" flag (the STREAM construction), with the object's name
//! as associated data. A segment cannot be moved, dropped or appended without failing
//! authentication, and a `Range` read decrypts only the segments it touches.
//!
//! **Partial uploads** are written with AES-256-CTR under a per-upload random key: appends at
//! any byte offset work, and integrity comes from the whole-file SHA-256 checked at completion.

use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

/// Plaintext bytes per sealed segment.
pub const SEGMENT: u64 = 64 * 1024;
/// AES-GCM tag length.
pub const TAG: u64 = 16;

#[derive(Debug, thiserror::Error)]
#[error("stored object is corrupt or was encrypted under another key")]
pub struct CorruptObject;

pub fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

fn nonce(index: u64, last: bool) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[3] = u8::from(last);
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::from(n)
}

/// Number of segments of a `size`-byte plaintext (at least one).
pub fn segments(size: u64) -> u64 {
    size.div_ceil(SEGMENT).max(1)
}

/// Ciphertext length of a `size`-byte plaintext.
pub fn sealed_len(size: u64) -> u64 {
    size + segments(size) * TAG
}

/// Seals the segments of one object.
pub struct Sealer {
    cipher: Aes256Gcm,
    aad: Vec<u8>,
}

impl Sealer {
    pub fn new(key: &[u8; 32], object_name: &str) -> Self {
        Self { cipher: Aes256Gcm::new(key.into()), aad: object_name.as_bytes().to_vec() }
    }

    pub fn seal(&self, index: u64, last: bool, plain: &[u8]) -> Vec<u8> {
        self.cipher.encrypt(&nonce(index, last), Payload { msg: plain, aad: &self.aad }).unwrap_or_default()
    }

    pub fn open(&self, index: u64, last: bool, sealed: &[u8]) -> Result<Vec<u8>, CorruptObject> {
        self.cipher
            .decrypt(&nonce(index, last), Payload { msg: sealed, aad: &self.aad })
            .map_err(|_| CorruptObject)
    }
}

/// A plaintext byte range `[start, end)` mapped onto the sealed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    pub first: u64,
    pub last: u64,
}

impl SegmentSpan {
    pub fn of(start: u64, end: u64) -> Self {
        Self { first: start / SEGMENT, last: end.saturating_sub(1) / SEGMENT }
    }

    /// Byte range of segments `first..=last` in the sealed object of a `size`-byte plaintext.
    pub fn sealed_range(first: u64, last: u64, size: u64) -> std::ops::Range<u64> {
        let seg = SEGMENT + TAG;
        (first * seg)..((last + 1) * seg).min(sealed_len(size))
    }
}

/// The AES-256-CTR keystream of a partial upload.
pub struct UploadCipher(ctr::Ctr128BE<aes::Aes256>);

impl UploadCipher {
    /// Positioned at byte `offset` of the upload.
    pub fn at(key: &[u8; 32], offset: u64) -> Self {
        let mut c = ctr::Ctr128BE::<aes::Aes256>::new(key.into(), &[0u8; 16].into());
        c.seek(offset);
        Self(c)
    }

    /// Encrypts or decrypts (the same operation) the next bytes in place.
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }
}

/// A partial upload read with blocking I/O (for header parsers that need `Read + Seek`).
pub struct DecryptingFile {
    file: std::fs::File,
    key: [u8; 32],
    cipher: UploadCipher,
}

impl DecryptingFile {
    pub fn new(file: std::fs::File, key: [u8; 32]) -> Self {
        Self { file, cipher: UploadCipher::at(&key, 0), key }
    }
}

impl std::io::Read for DecryptingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.cipher.apply(&mut buf[..n]);
        Ok(n)
    }
}

impl std::io::Seek for DecryptingFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let at = self.file.seek(pos)?;
        self.cipher = UploadCipher::at(&self.key, at);
        Ok(at)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn segments_bind_index_finality_and_name() {
        let s = Sealer::new(&[1u8; 32], "obj");
        let ct = s.seal(3, false, b"hello");
        assert_eq!(s.open(3, false, &ct).unwrap(), b"hello");
        assert!(s.open(4, false, &ct).is_err(), "moved");
        assert!(s.open(3, true, &ct).is_err(), "truncation: not the last segment");
        assert!(Sealer::new(&[1u8; 32], "other").open(3, false, &ct).is_err(), "copied to another object");
        assert!(Sealer::new(&[2u8; 32], "obj").open(3, false, &ct).is_err());
    }

    #[test]
    fn spans_and_lengths() {
        assert_eq!(segments(0), 1);
        assert_eq!(segments(SEGMENT), 1);
        assert_eq!(segments(SEGMENT + 1), 2);
        assert_eq!(sealed_len(SEGMENT + 1), SEGMENT + 1 + 2 * TAG);
        assert_eq!(SegmentSpan::of(0, 1), SegmentSpan { first: 0, last: 0 });
        assert_eq!(SegmentSpan::of(SEGMENT - 1, SEGMENT + 1), SegmentSpan { first: 0, last: 1 });
        assert_eq!(SegmentSpan::sealed_range(1, 1, SEGMENT + 1), (SEGMENT + TAG)..(SEGMENT + 1 + 2 * TAG));
    }

    #[test]
    fn ctr_is_seekable() {
        let key = [9u8; 32];
        let mut whole = b"0123456789abcdefghijklmnopqrstuvwxyz".to_vec();
        UploadCipher::at(&key, 0).apply(&mut whole);
        let mut tail = b"hijklmnopqrstuvwxyz".to_vec();
        UploadCipher::at(&key, 17).apply(&mut tail);
        assert_eq!(&whole[17..], &tail[..]);
        UploadCipher::at(&key, 17).apply(&mut tail);
        assert_eq!(tail, b"hijklmnopqrstuvwxyz");
    }
}
