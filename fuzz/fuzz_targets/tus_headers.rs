//! The tus request headers (`Tus-Resumable`, `Upload-Length`, `Upload-Offset`,
//! `Upload-Metadata`, `Upload-Checksum`): hostile values get an error, never a panic. Input:
//! lines; the first byte of each picks the header, the rest is its value.
#![no_main]

use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 5] = ["tus-resumable", "upload-length", "upload-offset", "upload-metadata", "upload-checksum"];

fuzz_target!(|data: &[u8]| {
    let mut h = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some((first, value)) = line.split_first() else { continue };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.append(NAMES[usize::from(*first) % NAMES.len()], v);
        }
    }
    signaling_server::materials::tus::fuzz_parse_headers(&h);
});
