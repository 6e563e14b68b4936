//! Thumbnails: JPEG, at most [`MAX_SIDE`] pixels on the longer side. Images are decoded with the
//! `image` crate under allocation limits (no decompression bombs); the first page of a PDF is
//! rendered by poppler's `pdftoppm` when it is installed, otherwise a generic page is shown.

use std::io::Cursor;
use std::time::Duration;

use image::{ImageFormat, ImageReader, Limits, Rgb, RgbImage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::sniff::Kind;

pub const MAX_SIDE: u32 = 320;
const MAX_DIMENSION: u32 = 20_000;
const MAX_ALLOC: u64 = 512 * 1024 * 1024;
const PDFTOPPM_TIMEOUT: Duration = Duration::from_secs(20);

fn encode_jpeg(img: &RgbImage) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    img.write_with_encoder(enc).ok()?;
    Some(out)
}

/// Thumbnail of a JPEG, PNG or TIFF image (blocking: call from `spawn_blocking`).
pub fn image_thumbnail(kind: Kind, bytes: &[u8]) -> Option<Vec<u8>> {
    let format = match kind {
        Kind::Jpeg => ImageFormat::Jpeg,
        Kind::Png => ImageFormat::Png,
        Kind::Tiff => ImageFormat::Tiff,
        Kind::Pdf => return None,
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| tracing::debug!(error = %e, "thumbnail: cannot decode")).ok()?;
    encode_jpeg(&img.thumbnail(MAX_SIDE, MAX_SIDE).to_rgb8())
}

/// First page of a PDF via `pdftoppm` (reading the document from stdin); `None` when poppler is
/// missing, the document does not render, or it takes too long.
pub async fn pdf_thumbnail(mut pdf: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Option<Vec<u8>> {
    let mut child = tokio::process::Command::new("pdftoppm")
        .args(["-jpeg", "-singlefile", "-f", "1", "-l", "1", "-scale-to", &MAX_SIDE.to_string(), "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| tracing::debug!(error = %e, "pdftoppm not available"))
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let mut stdout = child.stdout.take()?;
    let feed = async move {
        // A broken pipe (pdftoppm gave up early) is not an error here.
        let _ = tokio::io::copy(&mut pdf, &mut stdin).await;
        let _ = stdin.shutdown().await;
    };
    let read = async move {
        let mut out = Vec::new();
        (&mut stdout).take(4 * 1024 * 1024).read_to_end(&mut out).await.map(|_| out)
    };
    let (_, out) = tokio::time::timeout(PDFTOPPM_TIMEOUT, async { tokio::join!(feed, read) }).await.ok()?;
    let status = child.wait().await.ok()?;
    let out = out.ok()?;
    (status.success() && out.starts_with(&[0xFF, 0xD8, 0xFF])).then_some(out)
}

/// A generic page symbol for documents without a rendered thumbnail.
pub fn placeholder() -> Vec<u8> {
    let (w, h) = (226u32, MAX_SIDE);
    let img = RgbImage::from_fn(w, h, |x, y| {
        let border = x < 8 || x >= w - 8 || y < 8 || y >= h - 8;
        let line = (40..h - 40).contains(&y) && (y - 40) % 24 < 4 && (30..w - 30).contains(&x);
        if border || line { Rgb([180, 186, 196]) } else { Rgb([250, 250, 250]) }
    });
    encode_jpeg(&img).unwrap_or_default()
}
