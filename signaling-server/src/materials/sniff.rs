//! What a file is, decided by its first bytes (never by its name), and display-safe names.

/// The content types the store accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pdf,
    Jpeg,
    Png,
    Tiff,
    /// A call recording: Matroska or WebM (EBML header).
    Video,
}

impl Kind {
    pub fn mime(self) -> &'static str {
        match self {
            Kind::Pdf => "application/pdf",
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Tiff => "image/tiff",
            Kind::Video => "video/webm",
        }
    }

    pub fn from_mime(s: &str) -> Option<Self> {
        [Kind::Pdf, Kind::Jpeg, Kind::Png, Kind::Tiff, Kind::Video].into_iter().find(|k| k.mime() == s)
    }
}

/// Bytes needed to decide.
pub const MAGIC_LEN: usize = 8;

/// The kind of a file from its first [`MAGIC_LEN`] bytes (fewer if the file is shorter).
pub fn sniff(head: &[u8]) -> Option<Kind> {
    if head.starts_with(b"%PDF-") {
        Some(Kind::Pdf)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Kind::Jpeg)
    } else if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some(Kind::Png)
    } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        Some(Kind::Tiff)
    } else if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some(Kind::Video)
    } else {
        None
    }
}

/// Longest display name kept, in characters.
pub const MAX_NAME_CHARS: usize = 120;

/// A file name as the uploader gave it, made harmless for display: only the last path
/// component, no control or direction-changing characters, no leading dots, at most
/// [`MAX_NAME_CHARS`] characters (keeping the extension). It is metadata only: the store never
/// uses it as a path.
pub fn display_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}'..='\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{2060}' | '\u{FEFF}')
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() {
        return "未命名 (unnamed)".to_owned();
    }
    if trimmed.chars().count() <= MAX_NAME_CHARS {
        return trimmed.to_owned();
    }
    let ext: String = match trimmed.rsplit_once('.') {
        Some((_, e)) if !e.is_empty() && e.chars().count() <= 8 => format!(".{e}"),
        _ => String::new(),
    };
    let keep = MAX_NAME_CHARS - 1 - ext.chars().count();
    format!("{}…{ext}", trimmed.chars().take(keep).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(b"%PDF-1.7\n"), Some(Kind::Pdf));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0, 0]), Some(Kind::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), Some(Kind::Png));
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Some(Kind::Tiff));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Some(Kind::Tiff));
        for bad in [&b"MZ\x90\0"[..], b"<html>", b"", b"%PD", b"GIF89a"] {
            assert_eq!(sniff(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_are_harmless() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("C:\\Windows\\system32\\x.pdf"), "x.pdf");
        assert_eq!(display_name("..."), "未命名 (unnamed)");
        assert_eq!(display_name(".bashrc"), "bashrc");
        assert_eq!(display_name("a\u{202E}fdp.exe"), "afdp.exe");
        assert_eq!(display_name("a\nb\0c.jpg"), "abc.jpg");
        let long = format!("{}.pdf", "长".repeat(5000));
        let d = display_name(&long);
        assert_eq!(d.chars().count(), MAX_NAME_CHARS);
        assert!(d.ends_with("….pdf"));
        assert_eq!(display_name("身份证 正面.jpg"), "身份证 正面.jpg");
    }
}
