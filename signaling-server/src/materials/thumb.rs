//! Thumbnails: JPEG, at most [`MAX_SIDE`] pixels on the longer side, made in the background
//! after an upload completed ([`spawn`]): the material is announced at once with
//! `has_thumbnail: false`, and a second `material_changed` says `has_thumbnail: true`. At most
//! [`CONCURRENT_RENDERS`] render at once (a decoded A4 page at 600 dpi is ≈ 100 MB of pixels,
//! so memory does not grow with the uploads that complete together). Images are decoded with the `image`
//! crate under allocation limits (and were refused at upload beyond
//! [`super::check::MAX_IMAGE_PIXELS`]); the first page of a PDF is rendered by poppler's
//! `pdftoppm` in a limited child ([`super::check::limited`]), or a generic page is stored.

use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use image::{DynamicImage, GrayImage, ImageFormat, ImageReader, Limits, Rgb, RgbImage};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use super::check::{CHILD_TIMEOUT, limited};
use super::crypto::{Sealer, random_key};
use super::sniff::Kind;
use super::staging::SealedReader;
use crate::state::AppState;

pub const MAX_SIDE: u32 = 320;
/// Thumbnails made at once (the store's `renders` semaphore).
pub const CONCURRENT_RENDERS: usize = 1;
const MAX_DIMENSION: u32 = 16_000;
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// Makes the thumbnail of the new object `name` in the background, stores it and tells the
/// parties of the material's session (`material_changed`, `has_thumbnail: true`).
pub(crate) fn spawn(state: AppState, name: String, kind: Kind, key: [u8; 32], size: u64, material: Uuid) {
    tokio::spawn(async move {
        if let Err(e) = make(&state, &name, kind, &key, size, material).await {
            tracing::warn!(error = %e, "thumbnail not made");
        }
    });
}

async fn make(
    state: &AppState,
    name: &str,
    kind: Kind,
    key: &[u8; 32],
    size: u64,
    material: Uuid,
) -> Result<(), String> {
    let path = super::object_path(name);
    let thumb = {
        let _permit = state.materials.renders.acquire().await.map_err(|e| e.to_string())?;
        match kind {
            Kind::Pdf => Some(
                pdf_thumbnail(state.materials.open_range(&path, key, size, 0, size))
                    .await
                    .unwrap_or_else(placeholder),
            ),
            _ => match state.materials.local_file(&path) {
                // The local store: read and decrypted a segment at a time while decoding.
                Some(file) => {
                    let (key, path) = (*key, path.clone());
                    tokio::task::spawn_blocking(move || {
                        let file = std::fs::File::open(file).map_err(|e| e.to_string())?;
                        let plain = SealedReader::new(file, Sealer::new(&key, &path), size);
                        Ok::<_, String>(image_thumbnail(kind, BufReader::with_capacity(64 * 1024, plain)))
                    })
                    .await
                    .map_err(|e| e.to_string())??
                }
                None => {
                    let bytes =
                        state.materials.read_all(&path, key, size).await.map_err(|e| e.to_string())?;
                    tokio::task::spawn_blocking(move || image_thumbnail(kind, Cursor::new(bytes)))
                        .await
                        .map_err(|e| e.to_string())?
                }
            },
        }
    };
    let Some(t) = thumb else { return Ok(()) };
    let tkey = random_key();
    let tpath = super::thumb_path(name);
    state.materials.seal(&tpath, &tkey, &t[..], t.len() as u64).await.map_err(|e| e.to_string())?;
    let n = sqlx::query(
        "UPDATE material_objects SET thumb_name = $1, thumb_size = $2, thumb_wrapped_key = $3          WHERE name = $1 AND thumb_name IS NULL",
    )
    .bind(name)
    .bind(i64::try_from(t.len()).unwrap_or(0))
    .bind(state.pii.wrap_key(&tkey, &format!("object:{tpath}")))
    .execute(&state.db.pool)
    .await
    .map_err(|e| e.to_string())?
    .rows_affected();
    if n != 1 {
        // No row took it: the content was purged while the thumbnail was being made (or another
        // render stored one first). A purged object's thumbnail must not outlive it.
        let gone = sqlx::query("SELECT 1 AS x FROM material_objects WHERE name = $1")
            .bind(name)
            .fetch_optional(&state.db.pool)
            .await
            .map_err(|e| e.to_string())?
            .is_none();
        if gone {
            state.materials.delete(&tpath).await;
        }
        return Ok(());
    }
    // Every material on this content hears of it (usually one).
    let rows = sqlx::query("SELECT id FROM materials WHERE object_name = $1")
        .bind(name)
        .fetch_all(&state.db.pool)
        .await
        .map_err(|e| e.to_string())?;
    let mut ids: Vec<Uuid> = Vec::new();
    for r in &rows {
        if let Some(id) = r.try_get::<String, _>("id").ok().and_then(|s| Uuid::parse_str(&s).ok()) {
            ids.push(id);
        }
    }
    if !ids.contains(&material) {
        ids.push(material);
    }
    for id in ids {
        let Ok(Some(m)) = super::load(state, id).await else { continue };
        let Ok(Some(session)) = super::session_info(state, m.view.session_id).await else { continue };
        super::notify_material(state, &session, m.view).await;
    }
    Ok(())
}

fn encode_jpeg(img: &RgbImage) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    img.write_with_encoder(enc).ok()?;
    Some(out)
}

/// Thumbnail of a JPEG, PNG or TIFF image read from `reader` (blocking: call from
/// `spawn_blocking`). A JPEG is decoded at reduced size in the DCT ([`jpeg_scaled`]: an A4 page
/// at 600 dpi becomes 620 × 877 pixels, ≈ 1.6 MB, instead of ≈ 104 MB); other images, and a
/// JPEG that decoder does not take, are decoded whole by the `image` crate under its limits.
pub fn image_thumbnail(kind: Kind, mut reader: impl BufRead + Seek) -> Option<Vec<u8>> {
    let format = match kind {
        Kind::Jpeg => ImageFormat::Jpeg,
        Kind::Png => ImageFormat::Png,
        Kind::Tiff => ImageFormat::Tiff,
        Kind::Pdf | Kind::Video => return None,
    };
    if kind == Kind::Jpeg {
        match jpeg_scaled(&mut reader) {
            Ok(img) => return encode_jpeg(&img.thumbnail(MAX_SIDE, MAX_SIDE).to_rgb8()),
            Err(e) => tracing::debug!(error = %e, "thumbnail: no scaled JPEG decode"),
        }
        reader.seek(SeekFrom::Start(0)).ok()?;
    }
    let mut reader = ImageReader::with_format(reader, format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| tracing::debug!(error = %e, "thumbnail: cannot decode")).ok()?;
    encode_jpeg(&img.thumbnail(MAX_SIDE, MAX_SIDE).to_rgb8())
}

/// A JPEG decoded at the smallest DCT scale (1/8, 1/4, 1/2 or 1) that still covers
/// [`MAX_SIDE`]: a baseline JPEG is decoded a row of blocks at a time into the scaled planes, so
/// memory follows the thumbnail's size, not the page's (a progressive one keeps its coefficients,
/// bounded by [`MAX_ALLOC`]). Grey and RGB only (CMYK and 16-bit go to the `image` crate).
pub fn jpeg_scaled(reader: impl Read) -> Result<DynamicImage, String> {
    let mut d = jpeg_decoder::Decoder::new(reader);
    d.set_max_decoding_buffer_size(usize::try_from(MAX_ALLOC).unwrap_or(usize::MAX));
    d.read_info().map_err(|e| e.to_string())?;
    let info = d.info().ok_or("no header")?;
    if u32::from(info.width.max(info.height)) > MAX_DIMENSION {
        return Err(format!("{} x {} pixels", info.width, info.height));
    }
    let side = u16::try_from(MAX_SIDE).unwrap_or(u16::MAX);
    let (w, h) = d.scale(side, side).map_err(|e| e.to_string())?;
    let pixels = d.decode().map_err(|e| e.to_string())?;
    let (w, h) = (u32::from(w), u32::from(h));
    let img = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8),
        jpeg_decoder::PixelFormat::RGB24 => RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8),
        other => return Err(format!("pixel format {other:?}")),
    };
    img.ok_or_else(|| "decoded size does not match".to_owned())
}

/// First page of a PDF via `pdftoppm` (reading the document from stdin, in a child with memory
/// and CPU limits); `None` when poppler is missing, the document does not render, or it takes
/// too long.
pub async fn pdf_thumbnail(
    pdf: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> Option<Vec<u8>> {
    let mut child = limited("pdftoppm")
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
        let mut pdf = std::pin::pin!(pdf);
        while let Some(Ok(chunk)) = pdf.next().await {
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = stdin.shutdown().await;
    };
    let read = async move {
        let mut out = Vec::new();
        (&mut stdout).take(4 * 1024 * 1024).read_to_end(&mut out).await.map(|_| out)
    };
    let (_, out) = tokio::time::timeout(CHILD_TIMEOUT, async { tokio::join!(feed, read) }).await.ok()?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A page whose left half is red and right half blue, as a JPEG.
    fn two_colour_page(w: u32, h: u32, grey: bool) -> Vec<u8> {
        let img =
            RgbImage::from_fn(w, h, |x, _| if x < w / 2 { Rgb([200, 20, 20]) } else { Rgb([20, 20, 200]) });
        let img = if grey {
            DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(img).to_luma8())
        } else {
            DynamicImage::ImageRgb8(img)
        };
        let mut out = Vec::new();
        img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)).unwrap();
        out
    }

    #[test]
    fn a_jpeg_is_decoded_at_reduced_size_and_its_thumbnail_shows_the_page() {
        let page = two_colour_page(1600, 2400, false);
        // 1/8 would be 200 × 300, under the thumbnail's side: 1/4 is the smallest that covers it.
        let scaled = jpeg_scaled(Cursor::new(&page)).unwrap();
        assert_eq!((scaled.width(), scaled.height()), (400, 600));
        let thumb = image_thumbnail(Kind::Jpeg, Cursor::new(page)).unwrap();
        let t = image::load_from_memory(&thumb).unwrap().to_rgb8();
        assert!(t.width() <= MAX_SIDE && t.height() == MAX_SIDE, "{}x{}", t.width(), t.height());
        let (left, right) =
            (t.get_pixel(t.width() / 4, t.height() / 2), t.get_pixel(t.width() * 3 / 4, t.height() / 2));
        assert!(left[0] > 150 && left[2] < 80, "left half red: {left:?}");
        assert!(right[2] > 150 && right[0] < 80, "right half blue: {right:?}");
    }

    #[test]
    fn grey_jpegs_and_other_images_get_thumbnails() {
        let grey = two_colour_page(900, 1200, true);
        assert_eq!(jpeg_scaled(Cursor::new(&grey)).unwrap().width(), 450);
        let t = image::load_from_memory(&image_thumbnail(Kind::Jpeg, Cursor::new(grey)).unwrap()).unwrap();
        assert_eq!(t.height(), MAX_SIDE);
        let mut png = Vec::new();
        RgbImage::from_pixel(64, 32, Rgb([1, 2, 3]))
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let t = image::load_from_memory(&image_thumbnail(Kind::Png, Cursor::new(png)).unwrap()).unwrap();
        assert_eq!((t.width(), t.height()), (MAX_SIDE, MAX_SIDE / 2), "the image's own proportions");
    }

    #[test]
    fn a_broken_jpeg_has_no_thumbnail() {
        let mut page = two_colour_page(640, 480, false);
        page.truncate(300);
        assert!(image_thumbnail(Kind::Jpeg, Cursor::new(page)).is_none());
    }
}
