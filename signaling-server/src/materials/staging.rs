//! The staged file of an upload in progress, already in the store's sealed format, so that
//! finishing an upload is a rename (local store) or a plain copy (S3), not a second pass that
//! decrypts, hashes and re-encrypts the whole file.
//!
//! The object's name is known when the upload is created (a keyed hash of the declared
//! SHA-256), so every complete [`SEGMENT`] is sealed as it arrives, with the object's path as
//! associated data, at its place in the object: `index × (SEGMENT + TAG)`. The last, partial
//! segment of a `PATCH` (the *tail*, fewer than [`SEGMENT`] bytes) cannot be sealed yet (a GCM
//! segment is never sealed twice under one nonce): it is kept in one of two *tail slots* past
//! the object's end, AES-CTR under a key derived from the upload's key. A `PATCH` writes its
//! tail into the slot that does not hold the acknowledged one, and never writes over an
//! acknowledged segment, so one fsync per `PATCH` keeps everything acknowledged: after a crash
//! the slot whose header names the stored offset is the tail. Finishing truncates the slots
//! away (after the last segments are fsynced).
//!
//! The whole-file SHA-256 is computed incrementally as the bytes arrive and kept in memory
//! between `PATCH`es ([`super::Store`]); after a restart it is recomputed once from the staged
//! prefix ([`for_each_plain`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::crypto::{SEGMENT, Sealer, TAG, UploadCipher, sealed_len, segments};

/// Bytes of one sealed segment.
const SEALED: u64 = SEGMENT + TAG;
/// A tail slot: start (u64 BE), length (u64 BE), then up to [`SEGMENT`] bytes.
const SLOT: u64 = 16 + SEGMENT;
/// Plaintext segments sealed and written in one go.
pub const BATCH_SEGMENTS: u64 = 8;
/// Bytes written between two write-backs started while a `PATCH` is still arriving.
pub const SYNC_EVERY: u64 = 1024 * 1024;

fn seg_usize() -> usize {
    usize::try_from(SEGMENT).unwrap_or(65_536)
}

/// The key of the tail slots: derived, so the CTR keystream never meets the GCM one.
pub fn tail_key(key: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"bangban upload tail\0");
    h.update(key);
    h.finalize().into()
}

fn slot_pos(length: u64, slot: u8) -> u64 {
    sealed_len(length) + u64::from(slot) * SLOT
}

/// Plaintext length of segment `index` of a `length`-byte file.
fn seg_len(length: u64, index: u64) -> u64 {
    length.saturating_sub(index * SEGMENT).min(SEGMENT)
}

fn corrupt(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("staged upload: {what}"))
}

/// The acknowledged tail of an upload at `received` bytes: its plaintext and its slot (`None`
/// when `received` is on a segment boundary or the upload is complete).
pub fn read_tail(
    file: &File,
    key: &[u8; 32],
    length: u64,
    received: u64,
) -> std::io::Result<(Vec<u8>, Option<u8>)> {
    let start = received / SEGMENT * SEGMENT;
    let len = received - start;
    if len == 0 || received >= length {
        return Ok((Vec::new(), None));
    }
    for slot in 0..2u8 {
        let mut head = [0u8; 16];
        match file.read_exact_at(&mut head, slot_pos(length, slot)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => continue,
            Err(e) => return Err(e),
        }
        let s = u64::from_be_bytes(head[..8].try_into().unwrap_or_default());
        let l = u64::from_be_bytes(head[8..].try_into().unwrap_or_default());
        if s == start && l == len {
            let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
            file.read_exact_at(&mut buf, slot_pos(length, slot) + 16)?;
            UploadCipher::at(&tail_key(key), start).apply(&mut buf);
            return Ok((buf, Some(slot)));
        }
    }
    Err(corrupt("no tail slot for the stored offset"))
}

/// Writes the tail `plain` (the bytes from `start`, a segment boundary) into `slot`.
pub fn write_tail(
    file: &File,
    key: &[u8; 32],
    length: u64,
    slot: u8,
    start: u64,
    plain: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(16 + plain.len());
    out.extend_from_slice(&start.to_be_bytes());
    out.extend_from_slice(&(plain.len() as u64).to_be_bytes());
    let at = out.len();
    out.extend_from_slice(plain);
    UploadCipher::at(&tail_key(key), start).apply(&mut out[at..]);
    file.write_all_at(&out, slot_pos(length, slot))
}

/// Calls `f` with the plaintext of the first `received` bytes, in order (segments opened and
/// authenticated, then the tail).
pub fn for_each_plain(
    file: &File,
    sealer: &Sealer,
    key: &[u8; 32],
    length: u64,
    received: u64,
    mut f: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let total = segments(length);
    let full = if received >= length { total } else { received / SEGMENT };
    let mut buf = Vec::new();
    let mut i = 0;
    while i < full {
        let upto = (i + 16).min(full);
        let end = (upto * SEALED).min(sealed_len(length));
        buf.resize(usize::try_from(end - i * SEALED).unwrap_or(0), 0);
        file.read_exact_at(&mut buf, i * SEALED)?;
        for (k, chunk) in buf.chunks(usize::try_from(SEALED).unwrap_or(1)).enumerate() {
            let index = i + k as u64;
            let plain = sealer.open(index, index + 1 == total, chunk).map_err(|_| corrupt("segment"))?;
            f(&plain)?;
        }
        i = upto;
    }
    if received < length {
        let (tail, _) = read_tail(file, key, length, received)?;
        f(&tail)?;
    }
    Ok(())
}

/// SHA-256 of the first `received` bytes (after a restart: the hasher is not kept on disk).
pub fn hash_prefix(
    file: &File,
    sealer: &Sealer,
    key: &[u8; 32],
    length: u64,
    received: u64,
) -> std::io::Result<Sha256> {
    let mut h = Sha256::new();
    for_each_plain(file, sealer, key, length, received, |b| {
        h.update(b);
        Ok(())
    })?;
    Ok(h)
}

/// A complete staged (or stored) sealed file read as plaintext, with `Seek` for header parsers.
pub struct SealedReader {
    file: File,
    sealer: Sealer,
    length: u64,
    pos: u64,
    cur: Option<(u64, Vec<u8>)>,
}

impl SealedReader {
    pub fn new(file: File, sealer: Sealer, length: u64) -> Self {
        Self { file, sealer, length, pos: 0, cur: None }
    }
}

impl Read for SealedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.length || buf.is_empty() {
            return Ok(0);
        }
        let index = self.pos / SEGMENT;
        if self.cur.as_ref().is_none_or(|(i, _)| *i != index) {
            let total = segments(self.length);
            let mut sealed = vec![0u8; usize::try_from(seg_len(self.length, index) + TAG).unwrap_or(0)];
            self.file.read_exact_at(&mut sealed, index * SEALED)?;
            let plain =
                self.sealer.open(index, index + 1 == total, &sealed).map_err(|_| corrupt("segment"))?;
            self.cur = Some((index, plain));
        }
        let plain = self.cur.as_ref().map(|(_, p)| p.as_slice()).unwrap_or_default();
        let from = usize::try_from(self.pos - index * SEGMENT).unwrap_or(0).min(plain.len());
        let n = (plain.len() - from).min(buf.len());
        buf[..n].copy_from_slice(&plain[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SealedReader {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let to = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.length.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            to.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}

/// Seals the bytes of one `PATCH` into whole segments as they arrive, sealing and writing on a
/// blocking thread one batch at a time while the next batch is received. Starts at a segment
/// boundary with the acknowledged tail.
///
/// Every [`SYNC_EVERY`] bytes written it starts a `sync_data` of the file on another blocking
/// thread (one at a time), so the disk writes while the network still delivers and the
/// `PATCH`'s own fsync before its acknowledgement finds little left. Those early syncs only
/// start the work: nothing is acknowledged before that final fsync, and an error of an early
/// one fails the `PATCH` (a failed write-back is not reported twice).
pub struct SegmentWriter {
    file: Arc<File>,
    sealer: Arc<Sealer>,
    length: u64,
    /// Index of the first segment in `pending`.
    first: u64,
    /// Plaintext from segment `first` on (whole segments, then a partial one).
    pending: Vec<u8>,
    inflight: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The write-back in progress, if any.
    syncing: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Bytes written since the last write-back started.
    unsynced: u64,
}

impl SegmentWriter {
    pub fn new(file: Arc<File>, sealer: Arc<Sealer>, length: u64, offset: u64, tail: Vec<u8>) -> Self {
        let first = offset / SEGMENT;
        let mut pending = Vec::with_capacity(usize::try_from(BATCH_SEGMENTS * SEGMENT).unwrap_or(0));
        pending.extend_from_slice(&tail);
        Self { file, sealer, length, first, pending, inflight: None, syncing: None, unsynced: 0 }
    }

    fn end(&self) -> u64 {
        self.first * SEGMENT + self.pending.len() as u64
    }

    /// Appends plaintext (the caller keeps it within the file's length).
    pub async fn push(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        let batch = usize::try_from(BATCH_SEGMENTS * SEGMENT).unwrap_or(usize::MAX);
        while !data.is_empty() {
            let take = (batch - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == batch || self.end() == self.length {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Seals and writes the whole segments of `pending` (and the last one, once the file is
    /// complete); keeps a partial segment.
    async fn flush(&mut self) -> std::io::Result<()> {
        let complete = self.end() == self.length;
        let whole =
            if complete { self.pending.len() } else { self.pending.len() / seg_usize() * seg_usize() };
        if whole == 0 {
            return Ok(());
        }
        let rest = self.pending.split_off(whole);
        let mut next = Vec::with_capacity(self.pending.capacity());
        next.extend_from_slice(&rest);
        let data = std::mem::replace(&mut self.pending, next);
        let first = self.first;
        self.first += (whole as u64).div_ceil(SEGMENT);
        self.wait().await?;
        self.write_back().await?;
        self.unsynced += whole as u64;
        let (file, sealer, length) = (self.file.clone(), self.sealer.clone(), self.length);
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            let total = segments(length);
            let mut out = Vec::with_capacity(data.len() + data.len().div_ceil(seg_usize()) * 16);
            for (k, seg) in data.chunks(seg_usize()).enumerate() {
                let index = first + k as u64;
                out.extend_from_slice(&sealer.seal(index, index + 1 == total, seg));
            }
            file.write_all_at(&out, first * SEALED)
        }));
        Ok(())
    }

    async fn wait(&mut self) -> std::io::Result<()> {
        if let Some(h) = self.inflight.take() {
            h.await.map_err(std::io::Error::other)??;
        }
        Ok(())
    }

    /// Starts a write-back of what is written when [`SYNC_EVERY`] bytes were written since the
    /// last one and none is running (a finished one's error is returned).
    async fn write_back(&mut self) -> std::io::Result<()> {
        if self.syncing.as_ref().is_some_and(tokio::task::JoinHandle::is_finished) {
            self.wait_sync().await?;
        }
        if self.unsynced >= SYNC_EVERY && self.syncing.is_none() {
            self.unsynced = 0;
            let file = self.file.clone();
            self.syncing = Some(tokio::task::spawn_blocking(move || file.sync_data()));
        }
        Ok(())
    }

    async fn wait_sync(&mut self) -> std::io::Result<()> {
        if let Some(h) = self.syncing.take() {
            h.await.map_err(std::io::Error::other)??;
        }
        Ok(())
    }

    /// Waits for every write (and write-back); returns the new tail: where it starts and its
    /// plaintext. The caller still fsyncs before acknowledging.
    pub async fn finish(mut self) -> std::io::Result<(u64, Vec<u8>)> {
        self.flush().await?;
        self.wait().await?;
        self.wait_sync().await?;
        Ok((self.first * SEGMENT, std::mem::take(&mut self.pending)))
    }

    /// Drops what was received (nothing acknowledged is written over): waits for writes in flight.
    pub async fn abandon(mut self) {
        let _ = self.wait().await;
        let _ = self.wait_sync().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn staged_file() -> (tempfile::NamedTempFile, Arc<File>) {
        let t = tempfile::NamedTempFile::new().unwrap();
        let f = Arc::new(t.reopen().unwrap());
        (t, f)
    }

    /// Several PATCHes of odd sizes, each followed by its tail, read back as the object.
    #[tokio::test]
    async fn patches_of_any_size_make_the_sealed_object() {
        let key = [7u8; 32];
        let data: Vec<u8> = (0..(3 * SEGMENT + 1234)).map(|i| (i * 31 % 251) as u8).collect();
        let length = data.len() as u64;
        let (_t, file) = staged_file();
        let sealer = Arc::new(Sealer::new(&key, "objects/ab/abc"));
        let mut offset = 0u64;
        for cut in [1000u64, 70_000, 70_001, 130_000, length] {
            let (tail, slot) = read_tail(&file, &key, length, offset).unwrap();
            let mut w = SegmentWriter::new(file.clone(), sealer.clone(), length, offset, tail);
            for piece in data[usize::try_from(offset).unwrap()..usize::try_from(cut).unwrap()].chunks(5000) {
                w.push(piece).await.unwrap();
            }
            let (start, tail) = w.finish().await.unwrap();
            if cut < length && !tail.is_empty() {
                write_tail(&file, &key, length, slot.map_or(0, |s| 1 - s), start, &tail).unwrap();
            }
            offset = cut;
            let h = hash_prefix(&file, &sealer, &key, length, offset).unwrap();
            assert_eq!(h.finalize()[..], Sha256::digest(&data[..usize::try_from(offset).unwrap()])[..]);
        }
        file.set_len(sealed_len(length)).unwrap();
        let mut r = SealedReader::new(file.try_clone().unwrap(), Sealer::new(&key, "objects/ab/abc"), length);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        r.seek(SeekFrom::Start(SEGMENT + 5)).unwrap();
        let mut b = [0u8; 3];
        r.read_exact(&mut b).unwrap();
        assert_eq!(b[..], data[usize::try_from(SEGMENT).unwrap() + 5..][..3]);
    }
}
