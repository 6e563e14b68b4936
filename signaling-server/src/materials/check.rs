//! Documents are checked before they are accepted (and so before anything can reach a printer):
//!
//! - **PDF**: `qpdf --check` and `qpdf --show-npages` in a child process under `prlimit`
//!   (address space [`CHILD_MEMORY`], CPU seconds [`CHILD_CPU_SECS`]) and a wall-clock
//!   [`CHILD_TIMEOUT`], killed when it runs over. A damaged structure (no cross-reference table,
//!   broken streams: qpdf's exit 2 or 3), encryption of any kind, no pages or more than
//!   [`MAX_PDF_PAGES`] pages are refused.
//! - **Images**: only the header is read (width and height) and more than
//!   [`MAX_IMAGE_PIXELS`] pixels or a side over [`MAX_IMAGE_SIDE`] are refused, so a
//!   decompression bomb (a 1 MB PNG of 20,000 × 20,000 pixels) is never decoded.
//!
//! At most [`CONCURRENT_CHECKS`] checks run at once (a semaphore in the store); the background
//! thumbnail renderer has its own, smaller bound ([`super::thumb::CONCURRENT_RENDERS`]).
//!
//! Each refusal has a code and a Simplified Chinese message for the operator.

use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;

use crate::error::ApiError;

/// Most pages of a printable PDF.
pub const MAX_PDF_PAGES: u64 = 500;
/// Most pixels of an image (≈ A4 at 600 dpi in colour is 35 MP).
pub const MAX_IMAGE_PIXELS: u64 = 64_000_000;
/// Longest side of an image.
pub const MAX_IMAGE_SIDE: u32 = 16_000;
/// Address space of a checking or rendering child.
pub const CHILD_MEMORY: u64 = 512 * 1024 * 1024;
/// CPU seconds of a checking or rendering child.
pub const CHILD_CPU_SECS: u64 = 20;
/// Wall-clock bound of a checking or rendering child.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);
/// Checks and renders at once.
pub const CONCURRENT_CHECKS: usize = 2;

/// Why a document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("damaged PDF")]
    Damaged,
    #[error("encrypted PDF")]
    Encrypted,
    #[error("PDF without pages")]
    NoPages,
    #[error("PDF with {0} pages")]
    TooManyPages(u64),
    #[error("image of {0}x{1} pixels")]
    ImageTooLarge(u32, u32),
    #[error("undecodable image")]
    BadImage,
    #[error("the check did not finish")]
    CheckFailed,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Damaged => "pdf_damaged",
            Refusal::Encrypted => "pdf_encrypted",
            Refusal::NoPages => "pdf_no_pages",
            Refusal::TooManyPages(_) => "pdf_too_many_pages",
            Refusal::ImageTooLarge(..) => "image_too_large",
            Refusal::BadImage => "image_damaged",
            Refusal::CheckFailed => "document_unchecked",
        }
    }

    /// What the operator reads.
    pub fn message(&self) -> String {
        match self {
            Refusal::Damaged => "PDF 文件结构损坏（如缺少交叉引用表），不能接收或打印，请重新导出后再上传 \
                                 (damaged PDF structure)"
                .to_owned(),
            Refusal::Encrypted => {
                "PDF 文件已加密或设有密码，不能接收或打印，请上传未加密的文件 (encrypted PDF)".to_owned()
            }
            Refusal::NoPages => "PDF 文件没有页面 (PDF without pages)".to_owned(),
            Refusal::TooManyPages(n) => format!(
                "PDF 共 {n} 页，超过 {MAX_PDF_PAGES} 页上限，不能接收或打印 (PDF has {n} pages, limit {MAX_PDF_PAGES})"
            ),
            Refusal::ImageTooLarge(w, h) => format!(
                "图像尺寸 {w}×{h} 像素过大（上限 {} 万像素），不能接收 (image of {w}x{h} pixels is too large)",
                MAX_IMAGE_PIXELS / 10_000
            ),
            Refusal::BadImage => "图像文件损坏，无法读取尺寸 (damaged image)".to_owned(),
            Refusal::CheckFailed => {
                "文件检查未能完成（过大或过于复杂），不能接收 (the document check did not finish)".to_owned()
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, r.code(), r.message())
    }
}

/// A child under `prlimit` (memory, CPU, no core files), with a clean environment.
pub(crate) fn limited(program: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("prlimit");
    c.arg(format!("--as={CHILD_MEMORY}"))
        .arg(format!("--cpu={CHILD_CPU_SECS}"))
        .arg("--core=0")
        .arg("--")
        .arg(program)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .kill_on_drop(true);
    c
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(mut cmd: tokio::process::Command) -> Result<Ran, Refusal> {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().map_err(|e| {
        tracing::error!(error = %e, "cannot start the document checker (qpdf, prlimit)");
        Refusal::CheckFailed
    })?;
    let out = tokio::time::timeout(CHILD_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            tracing::warn!("document check timed out");
            Refusal::CheckFailed
        })?
        .map_err(|_| Refusal::CheckFailed)?;
    let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(64 * 1024)]).into_owned();
    Ok(Ran { code: out.status.code(), stdout: text(&out.stdout), stderr: text(&out.stderr) })
}

/// Checks the PDF at `path` (plaintext, readable by the child).
pub async fn check_pdf(path: &Path) -> Result<u64, Refusal> {
    let mut check = limited("qpdf");
    check.arg("--check").arg(path);
    let r = run(check).await?;
    if r.stdout.contains("User password =")
        || r.stdout.lines().any(|l| l.starts_with("File is encrypted") || l.starts_with("R = "))
    {
        return Err(Refusal::Encrypted);
    }
    match r.code {
        Some(0) => {}
        // qpdf: 2 errors (also "invalid password" for encrypted files), 3 warnings (a damaged
        // file it had to repair: exactly what stalls a printer's filter).
        Some(2) if r.stderr.contains("invalid password") => return Err(Refusal::Encrypted),
        Some(2 | 3) => return Err(Refusal::Damaged),
        _ => return Err(Refusal::CheckFailed),
    }
    let mut pages = limited("qpdf");
    pages.arg("--show-npages").arg(path);
    let r = run(pages).await?;
    if r.code != Some(0) {
        return Err(Refusal::Damaged);
    }
    let n: u64 = r.stdout.trim().parse().map_err(|_| Refusal::Damaged)?;
    match n {
        0 => Err(Refusal::NoPages),
        n if n > MAX_PDF_PAGES => Err(Refusal::TooManyPages(n)),
        n => Ok(n),
    }
}

/// Checks an image's dimensions from its header only (blocking: call from `spawn_blocking`).
pub fn check_image(
    format: image::ImageFormat,
    reader: impl std::io::BufRead + std::io::Seek,
) -> Result<(u32, u32), Refusal> {
    let mut r = image::ImageReader::with_format(reader, format);
    // Only headers are read here; the limits keep even that small.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(16 * 1024 * 1024);
    r.limits(limits);
    let (w, h) = r.into_dimensions().map_err(|e| {
        tracing::debug!(error = %e, "image header unreadable");
        Refusal::BadImage
    })?;
    if w == 0 || h == 0 {
        return Err(Refusal::BadImage);
    }
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(Refusal::ImageTooLarge(w, h));
    }
    Ok((w, h))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_png_bomb_is_refused_from_its_header() {
        // IHDR of 20,000 × 20,000 grey pixels: the header is all that is read.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&20_000u32.to_be_bytes());
        ihdr.extend_from_slice(&20_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        let mut crc = crc32(&ihdr).to_be_bytes().to_vec();
        png.append(&mut crc);
        // The first bytes of a data chunk: decoding would need 400 MB; it never starts.
        let idat = b"IDAT\x78\x01";
        png.extend_from_slice(&2u32.to_be_bytes());
        png.extend_from_slice(idat);
        png.extend_from_slice(&crc32(idat).to_be_bytes());
        let r = check_image(image::ImageFormat::Png, std::io::Cursor::new(png));
        assert_eq!(r, Err(Refusal::ImageTooLarge(20_000, 20_000)));
        assert!(Refusal::ImageTooLarge(20_000, 20_000).message().contains("20000×20000"));
        assert_eq!(
            check_image(image::ImageFormat::Png, std::io::Cursor::new(b"\x89PNG".to_vec())),
            Err(Refusal::BadImage)
        );
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
}
