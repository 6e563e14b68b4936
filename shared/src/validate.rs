//! Validated newtypes for untrusted strings.
//!
//! Every type here can only be constructed through [`TryFrom<String>`] / [`FromStr`], and
//! deserialises through the same check (`#[serde(try_from = "String", into = "String")]`), so a
//! value of one of these types is always valid: a malformed frame fails to decode with a
//! [`ValidationError`] whose message is Chinese first, then English.
//!
//! Rules shared by all types:
//! - Lengths are counted in Unicode scalar values ("characters") unless a type says bytes.
//! - C0/C1 control characters (including NUL and DEL) are rejected; multi-line types
//!   ([`Notes`], [`Comment`], [`Sdp`]) allow `\n` and `\r` (and `\t` for the free-text ones).
//! - Invisible or direction-changing format characters are rejected everywhere: bidi embeddings,
//!   overrides and isolates (U+202A–U+202E, U+2066–U+2069), LRM/RLM/ALM, U+2028/U+2029, the
//!   zero-width space U+200B, the word joiner U+2060 and the BOM U+FEFF. (ZWNJ/ZWJ are allowed in
//!   free text because emoji and some scripts need them, but not in [`PersonName`].)
//! - Anything else is accepted as data: `'; DROP TABLE users; --` is a perfectly valid comment.
//!   Callers must still use bound parameters and escape on output.
//!
//! Personal data: [`IdNumber`] and [`PersonName`] print masked in `Debug`. Their `Display` and
//! `AsRef<str>` give the real value (needed to store and compare it), so log them with `{:?}`
//! or `masked()`, never with `{}`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// Which field a [`ValidationError`] is about (for the bilingual message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    PersonName,
    Sdp,
    IceCandidate,
    SdpMid,
    Notes,
    Comment,
    ShortText,
    Phone,
    Token,
}

impl Field {
    /// Chinese name of the field.
    pub fn zh(self) -> &'static str {
        match self {
            Field::PersonName => "姓名",
            Field::Sdp => "SDP",
            Field::IceCandidate => "ICE 候选",
            Field::SdpMid => "SDP mid",
            Field::Notes => "备注",
            Field::Comment => "评价内容",
            Field::ShortText => "文本",
            Field::Phone => "电话号码",
            Field::Token => "令牌",
        }
    }

    /// English name of the field.
    pub fn en(self) -> &'static str {
        match self {
            Field::PersonName => "name",
            Field::Sdp => "SDP",
            Field::IceCandidate => "ICE candidate",
            Field::SdpMid => "SDP mid",
            Field::Notes => "notes",
            Field::Comment => "comment",
            Field::ShortText => "text",
            Field::Phone => "phone number",
            Field::Token => "token",
        }
    }
}

/// Why an untrusted string was refused. Messages are Chinese first, English in parentheses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("身份证号码格式不正确 (invalid ID number: expected 17 digits followed by a digit or X)")]
    IdNumberFormat,
    #[error("身份证号码校验位错误 (invalid ID number: check digit does not match)")]
    IdNumberChecksum,
    #[error("身份证号码中的出生日期无效 (invalid ID number: bad birth date)")]
    IdNumberBirthDate,
    #[error("{}不能为空 ({} must not be empty)", field.zh(), field.en())]
    Empty { field: Field },
    #[error("{}过长，最多 {max} 个字符 ({} too long: at most {max} characters)", field.zh(), field.en())]
    TooLong { field: Field, max: usize },
    #[error("{}过长，最多 {max} 字节 ({} too long: at most {max} bytes)", field.zh(), field.en())]
    TooManyBytes { field: Field, max: usize },
    #[error("{}包含不允许的控制字符或不可见字符 ({} contains a forbidden control or invisible character)", field.zh(), field.en())]
    ForbiddenChar { field: Field },
    #[error("SDP 格式不正确，必须以 v=0 开头 (invalid SDP: must start with \"v=0\")")]
    SdpFormat,
    #[error(
        "ICE 候选格式不正确，必须以 candidate: 开头 (invalid ICE candidate: must start with \"candidate:\")"
    )]
    IceCandidateFormat,
    #[error(
        "电话号码格式不正确 (invalid phone number: mobile 1[3-9]xxxxxxxxx or landline digits with dashes)"
    )]
    PhoneFormat,
    #[error("令牌格式不正确 (invalid token: printable ASCII without spaces)")]
    TokenFormat,
}

// ---------------------------------------------------------------------------------------------
// Character checks

/// Invisible or direction-changing characters refused in every text type.
pub fn is_forbidden_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'            // ARABIC LETTER MARK
        | '\u{200B}'          // ZERO WIDTH SPACE
        | '\u{200E}'          // LRM
        | '\u{200F}'          // RLM
        | '\u{2028}'          // LINE SEPARATOR
        | '\u{2029}'          // PARAGRAPH SEPARATOR
        | '\u{202A}'..='\u{202E}' // LRE RLE PDF LRO RLO
        | '\u{2060}'          // WORD JOINER
        | '\u{2066}'..='\u{2069}' // LRI RLI FSI PDI
        | '\u{FEFF}' // BOM / ZWNBSP
    )
}

#[derive(Clone, Copy)]
enum Lines {
    /// No control characters at all.
    Single,
    /// `\n` and `\r` allowed.
    CrLf,
    /// `\n`, `\r` and `\t` allowed.
    Text,
}

fn check_chars(s: &str, lines: Lines, field: Field) -> Result<(), ValidationError> {
    let bad = s.chars().any(|c| {
        if c.is_control() {
            !matches!((lines, c), (Lines::CrLf | Lines::Text, '\n' | '\r') | (Lines::Text, '\t'))
        } else {
            is_forbidden_format(c)
        }
    });
    if bad { Err(ValidationError::ForbiddenChar { field }) } else { Ok(()) }
}

fn check_chars_max(s: &str, max: usize, field: Field) -> Result<(), ValidationError> {
    // `chars().count()` is O(n) but the frame is already capped at 64 KiB.
    if s.chars().count() > max { Err(ValidationError::TooLong { field, max }) } else { Ok(()) }
}

fn check_bytes_max(s: &str, max: usize, field: Field) -> Result<(), ValidationError> {
    if s.len() > max { Err(ValidationError::TooManyBytes { field, max }) } else { Ok(()) }
}

/// Trims surrounding whitespace, reusing the allocation when nothing changes.
fn trimmed(s: String) -> String {
    let t = s.trim();
    if t.len() == s.len() { s } else { t.to_owned() }
}

/// Builds a `{"type": "string", ...}` schema from a JSON object literal.
fn string_schema(extra: serde_json::Value) -> Schema {
    let mut map = serde_json::Map::new();
    map.insert("type".into(), "string".into());
    if let serde_json::Value::Object(m) = extra {
        map.extend(m);
    }
    Schema::from(map)
}

// ---------------------------------------------------------------------------------------------
// Boilerplate shared by every newtype

macro_rules! string_newtype {
    ($ty:ident) => {
        impl $ty {
            /// The validated string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the validated string.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl FromStr for $ty {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::try_from(s.to_owned())
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = ValidationError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::try_from(s.to_owned())
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

macro_rules! plain_debug {
    ($ty:ident) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($ty)).field(&self.0).finish()
            }
        }
    };
}

macro_rules! json_schema_impl {
    ($ty:ident, $extra:tt) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }

            fn schema_id() -> Cow<'static, str> {
                Cow::Borrowed(concat!("bangban::validate::", stringify!($ty)))
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                string_schema(serde_json::json!($extra))
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let v: serde_json::Value = serde_json::json!($extra);
                let mut b =
                    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String);
                if let Some(d) = v.get("description").and_then(|d| d.as_str()) {
                    b = b.description(Some(d.to_owned()));
                }
                if let Some(n) = v.get("maxLength").and_then(|n| n.as_u64()) {
                    b = b.max_length(Some(n as usize));
                }
                if let Some(n) = v.get("minLength").and_then(|n| n.as_u64()) {
                    b = b.min_length(Some(n as usize));
                }
                if let Some(p) = v.get("pattern").and_then(|p| p.as_str()) {
                    b = b.pattern(Some(p.to_owned()));
                }
                b.into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $ty {}
    };
}

// ---------------------------------------------------------------------------------------------
// IdNumber

/// A mainland Chinese resident identity card number (居民身份证号码, GB 11643-1999).
///
/// 18 characters: a 6-digit region code, an 8-digit birth date (YYYYMMDD), a 3-digit sequence
/// number and an ISO 7064 MOD 11-2 check character (`0`–`9` or `X`). A lowercase `x` is
/// normalised to `X`; surrounding whitespace is trimmed. The birth date must be a real calendar
/// date between 1900 and 2099.
///
/// `Debug` prints only [`IdNumber::masked`]; `Display`/`AsRef<str>` give the full number.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdNumber(String);

string_newtype!(IdNumber);
json_schema_impl!(IdNumber, {
    "description": "居民身份证号码 (18 characters, GB 11643 check digit)",
    "minLength": 18,
    "maxLength": 18,
    "pattern": "^[0-9]{17}[0-9Xx]$"
});

impl IdNumber {
    /// Length of a second-generation ID number.
    pub const LEN: usize = 18;
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [u8; 11] = *b"10X98765432";

    /// The first 4 and last 4 characters with 10 asterisks between, e.g. `3101**********1234`.
    pub fn masked(&self) -> String {
        // Always 18 ASCII bytes, so byte slicing is safe.
        format!("{}{}{}", &self.0[..4], "*".repeat(10), &self.0[14..])
    }

    /// Birth date encoded in the number as `(year, month, day)`.
    pub fn birth_date(&self) -> (u16, u8, u8) {
        let b = self.0.as_bytes();
        let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0'));
        (num(6..10), num(10..12) as u8, num(12..14) as u8)
    }

    /// The check character GB 11643 prescribes for the first 17 digits.
    fn check_char(first17: &[u8]) -> u8 {
        let sum: u32 = first17.iter().zip(Self::WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
        Self::CHECK[(sum % 11) as usize]
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

impl TryFrom<String> for IdNumber {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let mut s = trimmed(s);
        let b = s.as_bytes();
        if b.len() != Self::LEN
            || !b[..17].iter().all(u8::is_ascii_digit)
            || !(b[17].is_ascii_digit() || b[17] == b'X' || b[17] == b'x')
        {
            return Err(ValidationError::IdNumberFormat);
        }
        if b[17] == b'x' {
            s.make_ascii_uppercase();
        }
        let id = IdNumber(s);
        let (y, m, d) = id.birth_date();
        if !(1900..=2099).contains(&y) || d == 0 || d > days_in_month(y, m) {
            return Err(ValidationError::IdNumberBirthDate);
        }
        let b = id.0.as_bytes();
        if Self::check_char(&b[..17]) != b[17] {
            return Err(ValidationError::IdNumberChecksum);
        }
        Ok(id)
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdNumber").field(&self.masked()).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// PersonName

/// A person's name (姓名): 1–32 characters after trimming, single line, no control or invisible
/// characters. Anything else is allowed (Han characters, Latin letters, `·` in names such as
/// `买买提·艾力`, spaces inside the name).
///
/// `Debug` prints only [`PersonName::masked`] (`张**`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PersonName(String);

string_newtype!(PersonName);
json_schema_impl!(PersonName, {
    "description": "姓名 (1-32 characters, trimmed, single line)",
    "minLength": 1,
    "maxLength": 32
});

impl PersonName {
    pub const MAX_CHARS: usize = 32;

    /// The first character followed by one `*` per remaining character (at least one), e.g.
    /// `张三丰` → `张**`, `王` → `王*`.
    pub fn masked(&self) -> String {
        let mut chars = self.0.chars();
        let first = chars.next().unwrap_or('*');
        let rest = chars.count().max(1);
        let mut out = String::with_capacity(first.len_utf8() + rest);
        out.push(first);
        out.extend(std::iter::repeat_n('*', rest));
        out
    }
}

impl TryFrom<String> for PersonName {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        const F: Field = Field::PersonName;
        let s = trimmed(s);
        if s.is_empty() {
            return Err(ValidationError::Empty { field: F });
        }
        check_chars_max(&s, Self::MAX_CHARS, F)?;
        check_chars(&s, Lines::Single, F)?;
        if s.contains(['\u{200C}', '\u{200D}']) {
            return Err(ValidationError::ForbiddenChar { field: F });
        }
        Ok(PersonName(s))
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PersonName").field(&self.masked()).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Sdp

/// A WebRTC session description (SDP offer or answer body).
///
/// At most 32 KiB (bytes), must start with `v=0`, no control characters except CR and LF. The
/// JSON-escaped form must also fit in 40 KiB (every CR, LF, `"` and `\` costs one extra byte once
/// escaped), so a relayed `signal` frame always stays under `MAX_FRAME_BYTES`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sdp(String);

string_newtype!(Sdp);
json_schema_impl!(Sdp, {
    "description": "SDP body (at most 32 KiB, starts with v=0)",
    "maxLength": 32768,
    "pattern": "^v=0"
});

impl Sdp {
    pub const MAX_BYTES: usize = 32 * 1024;
    pub const MAX_ESCAPED_BYTES: usize = 40 * 1024;
}

impl TryFrom<String> for Sdp {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        const F: Field = Field::Sdp;
        check_bytes_max(&s, Self::MAX_BYTES, F)?;
        if !s.starts_with("v=0") {
            return Err(ValidationError::SdpFormat);
        }
        check_chars(&s, Lines::CrLf, F)?;
        let escapes = s.bytes().filter(|b| matches!(b, b'\r' | b'\n' | b'"' | b'\\')).count();
        if s.len() + escapes > Self::MAX_ESCAPED_BYTES {
            return Err(ValidationError::TooManyBytes { field: F, max: Self::MAX_BYTES });
        }
        Ok(Sdp(s))
    }
}

impl fmt::Debug for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SDP is long and contains ICE credentials and fingerprints: log only its size.
        write!(f, "Sdp({} bytes)", self.0.len())
    }
}

// ---------------------------------------------------------------------------------------------
// IceCandidate

/// A trickled ICE candidate line (`candidate:...`, as in `RTCIceCandidate.candidate`).
///
/// At most 1 KiB (bytes), single line. The empty string is allowed and means "end of
/// candidates"; anything else must start with `candidate:`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IceCandidate(String);

string_newtype!(IceCandidate);
plain_debug!(IceCandidate);
json_schema_impl!(IceCandidate, {
    "description": "ICE candidate attribute, or \"\" for end of candidates (at most 1 KiB)",
    "maxLength": 1024,
    "pattern": "^(candidate:.*)?$"
});

impl IceCandidate {
    pub const MAX_BYTES: usize = 1024;

    /// The end-of-candidates marker (empty string).
    pub fn end_of_candidates() -> Self {
        IceCandidate(String::new())
    }

    /// Whether this is the end-of-candidates marker.
    pub fn is_end_of_candidates(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<String> for IceCandidate {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        const F: Field = Field::IceCandidate;
        check_bytes_max(&s, Self::MAX_BYTES, F)?;
        check_chars(&s, Lines::Single, F)?;
        if !s.is_empty() && !s.starts_with("candidate:") {
            return Err(ValidationError::IceCandidateFormat);
        }
        Ok(IceCandidate(s))
    }
}

// ---------------------------------------------------------------------------------------------
// SdpMid

/// The media stream identification tag of a candidate (`sdpMid`): 1–64 characters, single line.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SdpMid(String);

string_newtype!(SdpMid);
plain_debug!(SdpMid);
json_schema_impl!(SdpMid, {
    "description": "SDP media id (sdpMid), 1-64 characters",
    "minLength": 1,
    "maxLength": 64
});

impl SdpMid {
    pub const MAX_CHARS: usize = 64;
}

impl TryFrom<String> for SdpMid {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        const F: Field = Field::SdpMid;
        if s.is_empty() {
            return Err(ValidationError::Empty { field: F });
        }
        check_chars_max(&s, Self::MAX_CHARS, F)?;
        check_chars(&s, Lines::Single, F)?;
        Ok(SdpMid(s))
    }
}

// ---------------------------------------------------------------------------------------------
// Notes, Comment, ShortText

/// Operator notes (备注): multi-line free text, at most 2000 characters. May be empty.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Notes(String);

string_newtype!(Notes);
plain_debug!(Notes);
json_schema_impl!(Notes, {
    "description": "备注, multi-line text (at most 2000 characters)",
    "maxLength": 2000
});

impl Notes {
    pub const MAX_CHARS: usize = 2000;
}

impl TryFrom<String> for Notes {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        check_chars_max(&s, Self::MAX_CHARS, Field::Notes)?;
        check_chars(&s, Lines::Text, Field::Notes)?;
        Ok(Notes(s))
    }
}

/// A resident's rating comment (评价内容): multi-line free text, at most 500 characters. May be
/// empty.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Comment(String);

string_newtype!(Comment);
plain_debug!(Comment);
json_schema_impl!(Comment, {
    "description": "评价内容, multi-line text (at most 500 characters)",
    "maxLength": 500
});

impl Comment {
    pub const MAX_CHARS: usize = 500;
}

impl TryFrom<String> for Comment {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        check_chars_max(&s, Self::MAX_CHARS, Field::Comment)?;
        check_chars(&s, Lines::Text, Field::Comment)?;
        Ok(Comment(s))
    }
}

/// A short single-line text such as a name or a reason: 1–128 characters after trimming.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShortText(String);

string_newtype!(ShortText);
plain_debug!(ShortText);
json_schema_impl!(ShortText, {
    "description": "Single-line text (1-128 characters, trimmed)",
    "minLength": 1,
    "maxLength": 128
});

impl ShortText {
    pub const MAX_CHARS: usize = 128;
}

impl TryFrom<String> for ShortText {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        const F: Field = Field::ShortText;
        let s = trimmed(s);
        if s.is_empty() {
            return Err(ValidationError::Empty { field: F });
        }
        check_chars_max(&s, Self::MAX_CHARS, F)?;
        check_chars(&s, Lines::Single, F)?;
        Ok(ShortText(s))
    }
}

// ---------------------------------------------------------------------------------------------
// Phone

/// A mainland phone number (电话号码), trimmed:
/// - mobile: `1[3-9]` followed by 9 digits, e.g. `13812345678`;
/// - landline: 7–20 characters of digits with up to two single dashes between digit groups,
///   e.g. `021-12345678`, `0571-88886666-123`, `88886666`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

string_newtype!(Phone);
json_schema_impl!(Phone, {
    "description": "电话号码: mobile 1[3-9]xxxxxxxxx or landline digits with optional dashes",
    "minLength": 7,
    "maxLength": 20,
    "pattern": "^(1[3-9][0-9]{9}|[0-9]+(-[0-9]+){0,2})$"
});

impl Phone {
    pub const MAX_CHARS: usize = 20;

    /// Whether this is a mobile number (`1[3-9]xxxxxxxxx`).
    pub fn is_mobile(&self) -> bool {
        let b = self.0.as_bytes();
        b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && b.iter().all(u8::is_ascii_digit)
    }

    /// Masked for display and logs: `138****5678` for mobiles, else all but the last 4 digits.
    pub fn masked(&self) -> String {
        if self.is_mobile() {
            format!("{}****{}", &self.0[..3], &self.0[7..])
        } else {
            let keep = self.0.len().saturating_sub(4);
            self.0.char_indices().map(|(i, c)| if i < keep && c != '-' { '*' } else { c }).collect()
        }
    }
}

impl TryFrom<String> for Phone {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let s = trimmed(s);
        let b = s.as_bytes();
        if !(7..=Self::MAX_CHARS).contains(&b.len()) {
            return Err(ValidationError::PhoneFormat);
        }
        let mut groups = 0;
        for g in s.split('-') {
            groups += 1;
            if groups > 3 || g.is_empty() || !g.bytes().all(|c| c.is_ascii_digit()) {
                return Err(ValidationError::PhoneFormat);
            }
        }
        // Numbers starting with 1 are mobile numbers (also accepted as `138-1234-5678`).
        let digits: Vec<u8> = b.iter().copied().filter(u8::is_ascii_digit).collect();
        if digits[0] == b'1' && !(digits.len() == 11 && (b'3'..=b'9').contains(&digits[1])) {
            return Err(ValidationError::PhoneFormat);
        }
        Ok(Phone(s))
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Phone").field(&self.masked()).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Token

/// An opaque credential on the wire (access JWT, device JWT, resume token): 1–4096 bytes of
/// printable ASCII without spaces. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Token(String);

string_newtype!(Token);
json_schema_impl!(Token, {
    "description": "Opaque token (JWT or resume token), 1-4096 printable ASCII characters",
    "minLength": 1,
    "maxLength": 4096,
    "pattern": "^[!-~]+$"
});

impl Token {
    pub const MAX_BYTES: usize = 4096;
}

impl TryFrom<String> for Token {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        const F: Field = Field::Token;
        if s.is_empty() {
            return Err(ValidationError::Empty { field: F });
        }
        check_bytes_max(&s, Self::MAX_BYTES, F)?;
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::TokenFormat);
        }
        Ok(Token(s))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<redacted, {} bytes>)", self.0.len())
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Builds a valid ID number from 17 digits by appending the right check character.
    fn with_check(first17: &str) -> String {
        let c = IdNumber::check_char(first17.as_bytes()) as char;
        format!("{first17}{c}")
    }

    const SQLI: &str = "'; DROP TABLE users; -- <script>alert(1)</script> \" OR 1=1";

    #[test]
    fn id_number_accepts_valid_and_normalises_x() {
        // The sample number from GB 11643 discussions (check character X).
        let id: IdNumber = "11010519491231002X".parse().unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        let lower: IdNumber = "11010519491231002x".parse().unwrap();
        assert_eq!(lower.as_str(), "11010519491231002X");
        let padded: IdNumber = " 11010519491231002X\n".parse().unwrap();
        assert_eq!(padded.as_str(), "11010519491231002X");
        assert_eq!(lower.birth_date(), (1949, 12, 31));

        let computed = with_check("31010119900101123");
        assert!(IdNumber::try_from(computed).is_ok());
    }

    #[test]
    fn id_number_rejects_hostile_values() {
        use ValidationError::*;
        let cases: &[(&str, ValidationError)] = &[
            ("", IdNumberFormat),
            ("11010519491231002", IdNumberFormat),
            ("11010519491231002XX", IdNumberFormat),
            ("1101051949123100 X", IdNumberFormat),
            ("11010519491231002Y", IdNumberFormat),
            ("X10105194912310021", IdNumberFormat),
            ("１１０１０５１９４９１２３１００２Ｘ", IdNumberFormat), // full-width digits
            ("11010519491231002\0", IdNumberFormat),
            ("110105194912310029", IdNumberChecksum),
            ("110105194912310020", IdNumberChecksum),
            ("' OR 1=1 --aaaaaaaa", IdNumberFormat),
        ];
        for (input, want) in cases {
            assert_eq!(IdNumber::try_from(*input).unwrap_err(), *want, "input {input:?}");
        }
        // Bad dates, with otherwise correct check digits.
        for first17 in [
            "11010519491331002",
            "11010519490230002",
            "11010518991231002",
            "11010520230229002",
            "11010519490100002",
        ] {
            assert_eq!(IdNumber::try_from(with_check(first17)).unwrap_err(), IdNumberBirthDate, "{first17}");
        }
        assert!(IdNumber::try_from(with_check("11010520240229002")).is_ok(), "leap day");
    }

    #[test]
    fn id_number_masks_in_debug_and_masked() {
        let id: IdNumber = "11010519491231002X".parse().unwrap();
        assert_eq!(id.masked(), "1101**********002X");
        let dbg = format!("{id:?}");
        assert!(!dbg.contains("11010519491231002X"), "{dbg}");
        assert!(!dbg.contains("19491231"), "{dbg}");
        assert_eq!(dbg, "IdNumber(\"1101**********002X\")");
        // Debug of a containing struct masks too.
        let nested = format!("{:?}", Some(vec![id.clone()]));
        assert!(!nested.contains("0519491231"));
        // The wire form is the real number.
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"11010519491231002X\"");
    }

    #[test]
    fn id_number_error_message_is_chinese_first() {
        let e = IdNumber::try_from("123").unwrap_err().to_string();
        assert!(e.starts_with("身份证号码格式不正确 (invalid ID number"), "{e}");
        let e = serde_json::from_str::<IdNumber>("\"110105194912310029\"").unwrap_err().to_string();
        assert!(e.contains("身份证号码校验位错误"), "{e}");
    }

    #[test]
    fn person_name() {
        let n: PersonName = "  张三丰 ".parse().unwrap();
        assert_eq!(n.as_str(), "张三丰");
        assert_eq!(n.masked(), "张**");
        assert_eq!(format!("{n:?}"), "PersonName(\"张**\")");
        assert_eq!(n.to_string(), "张三丰");
        assert_eq!(PersonName::try_from("王").unwrap().masked(), "王*");
        assert!(PersonName::try_from("买买提·艾力").is_ok());
        assert!(PersonName::try_from("Zhang San").is_ok());
        assert!(PersonName::try_from("O'Brien; DROP TABLE x").is_ok(), "text is data");
        assert!(PersonName::try_from("名".repeat(32)).is_ok());

        use ValidationError::*;
        let f = Field::PersonName;
        assert_eq!(PersonName::try_from("").unwrap_err(), Empty { field: f });
        assert_eq!(PersonName::try_from(" \t\n ").unwrap_err(), Empty { field: f });
        assert_eq!(PersonName::try_from("名".repeat(33)).unwrap_err(), TooLong { field: f, max: 32 });
        for bad in [
            "张\0三",
            "张\n三",
            "张\u{7}三",
            "张\u{202E}三",
            "张\u{200B}三",
            "张\u{200D}三",
            "\u{FEFF}张",
            "张\u{85}三",
            "a\u{7F}b",
        ] {
            assert_eq!(PersonName::try_from(bad).unwrap_err(), ForbiddenChar { field: f }, "{bad:?}");
        }
    }

    #[test]
    fn sdp() {
        let ok = "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        assert!(Sdp::try_from(ok).is_ok());
        assert_eq!(format!("{:?}", Sdp::try_from(ok).unwrap()), format!("Sdp({} bytes)", ok.len()));
        use ValidationError::*;
        assert_eq!(Sdp::try_from("").unwrap_err(), SdpFormat);
        assert_eq!(Sdp::try_from("o=- 1 2 IN IP4 0.0.0.0").unwrap_err(), SdpFormat);
        assert_eq!(Sdp::try_from(" v=0").unwrap_err(), SdpFormat);
        assert_eq!(Sdp::try_from("v=0\r\n\0").unwrap_err(), ForbiddenChar { field: Field::Sdp });
        assert_eq!(Sdp::try_from("v=0\r\n\ta=x").unwrap_err(), ForbiddenChar { field: Field::Sdp });
        assert_eq!(Sdp::try_from("v=0\u{202E}").unwrap_err(), ForbiddenChar { field: Field::Sdp });
        // Exactly at the byte limit is fine, one more byte is not.
        let max = format!("v=0{}", "a".repeat(Sdp::MAX_BYTES - 3));
        assert!(Sdp::try_from(max.clone()).is_ok());
        assert_eq!(
            Sdp::try_from(format!("{max}a")).unwrap_err(),
            TooManyBytes { field: Field::Sdp, max: Sdp::MAX_BYTES }
        );
        // Multi-byte characters are counted in bytes: 11k CJK chars = 33k bytes.
        assert!(Sdp::try_from(format!("v=0{}", "中".repeat(11_000))).is_err());
        // Escape-heavy SDP that would blow up once JSON-encoded.
        assert!(Sdp::try_from(format!("v=0{}", "\"".repeat(25_000))).is_err());
    }

    #[test]
    fn ice_candidate() {
        let c = "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0";
        assert!(IceCandidate::try_from(c).is_ok());
        let end = IceCandidate::try_from("").unwrap();
        assert!(end.is_end_of_candidates());
        assert_eq!(end, IceCandidate::end_of_candidates());
        use ValidationError::*;
        assert_eq!(IceCandidate::try_from("a=candidate:1").unwrap_err(), IceCandidateFormat);
        assert_eq!(IceCandidate::try_from("'; DROP TABLE x").unwrap_err(), IceCandidateFormat);
        assert_eq!(
            IceCandidate::try_from("candidate:1\r\n").unwrap_err(),
            ForbiddenChar { field: Field::IceCandidate }
        );
        assert_eq!(
            IceCandidate::try_from(format!("candidate:{}", "1".repeat(1100))).unwrap_err(),
            TooManyBytes { field: Field::IceCandidate, max: 1024 }
        );
    }

    #[test]
    fn sdp_mid() {
        assert!(SdpMid::try_from("0").is_ok());
        assert!(SdpMid::try_from("audio").is_ok());
        assert!(SdpMid::try_from("").is_err());
        assert!(SdpMid::try_from("m".repeat(65)).is_err());
        assert!(SdpMid::try_from("a\nb").is_err());
    }

    #[test]
    fn notes_and_comment() {
        let multi = "第一行\n第二行\r\n\t缩进\n'; DROP TABLE sessions; --";
        assert_eq!(Notes::try_from(multi).unwrap().as_str(), multi);
        assert_eq!(Comment::try_from(multi).unwrap().as_str(), multi);
        assert!(Notes::try_from("").is_ok());
        assert!(Comment::try_from("👍🏽 服务很好 👨‍👩‍👧").is_ok(), "emoji with ZWJ allowed in free text");
        assert!(Notes::try_from("办".repeat(2000)).is_ok(), "2000 chars (6000 bytes) is fine");
        use ValidationError::*;
        assert_eq!(
            Notes::try_from("办".repeat(2001)).unwrap_err(),
            TooLong { field: Field::Notes, max: 2000 }
        );
        assert!(Comment::try_from("好".repeat(500)).is_ok());
        assert_eq!(
            Comment::try_from("好".repeat(501)).unwrap_err(),
            TooLong { field: Field::Comment, max: 500 }
        );
        for bad in
            ["a\0b", "a\u{1B}[31mred", "a\u{8}", "\u{202E}gnp.exe", "x\u{2066}y", "x\u{2028}y", "x\u{9F}"]
        {
            assert_eq!(Notes::try_from(bad).unwrap_err(), ForbiddenChar { field: Field::Notes }, "{bad:?}");
            assert_eq!(
                Comment::try_from(bad).unwrap_err(),
                ForbiddenChar { field: Field::Comment },
                "{bad:?}"
            );
        }
    }

    #[test]
    fn short_text() {
        assert_eq!(ShortText::try_from("  临时离开 ").unwrap().as_str(), "临时离开");
        assert!(ShortText::try_from(SQLI).is_ok());
        assert!(ShortText::try_from("字".repeat(128)).is_ok());
        use ValidationError::*;
        let f = Field::ShortText;
        assert_eq!(ShortText::try_from("   ").unwrap_err(), Empty { field: f });
        assert_eq!(ShortText::try_from("字".repeat(129)).unwrap_err(), TooLong { field: f, max: 128 });
        assert_eq!(ShortText::try_from("a\nb").unwrap_err(), ForbiddenChar { field: f });
        assert_eq!(ShortText::try_from("a\tb").unwrap_err(), ForbiddenChar { field: f });
    }

    #[test]
    fn phone() {
        for ok in [
            "13812345678",
            "138-1234-5678",
            "19912345678",
            "021-12345678",
            "0571-88886666-123",
            "88886666",
            " 13812345678 ",
        ] {
            assert!(Phone::try_from(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "12812345678",
            "1381234567a",
            "021--12345678",
            "-02112345678",
            "021-1234567-",
            "1-2-3-4567",
            "+8613812345678",
            "123456",
            "123456789012345678901",
            "138123456789",
            "1234567",
            "021 12345678",
            "１３８１２３４５６７８",
        ] {
            assert_eq!(Phone::try_from(bad).unwrap_err(), ValidationError::PhoneFormat, "{bad:?}");
        }
        let m = Phone::try_from("13812345678").unwrap();
        assert!(m.is_mobile());
        assert_eq!(m.masked(), "138****5678");
        assert_eq!(format!("{m:?}"), "Phone(\"138****5678\")");
        assert_eq!(Phone::try_from("021-12345678").unwrap().masked(), "***-****5678");
    }

    #[test]
    fn token() {
        let t = Token::try_from("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln").unwrap();
        assert_eq!(format!("{t:?}"), format!("Token(<redacted, {} bytes>)", t.as_str().len()));
        assert!(!format!("{t:?}").contains("eyJ"));
        assert!(Token::try_from("").is_err());
        assert!(Token::try_from("a b").is_err());
        assert!(Token::try_from("a\0").is_err());
        assert!(Token::try_from("令牌").is_err());
        assert!(Token::try_from("a".repeat(4096)).is_ok());
        assert!(Token::try_from("a".repeat(4097)).is_err());
    }

    #[test]
    fn serde_goes_through_validation() {
        assert!(serde_json::from_str::<Notes>("\"a\\u0000b\"").is_err());
        assert!(serde_json::from_str::<Notes>("\"a\\u202eb\"").is_err());
        assert!(serde_json::from_str::<PersonName>("\"\"").is_err());
        assert!(serde_json::from_str::<PersonName>("42").is_err());
        let n: PersonName = serde_json::from_str("\" 李四 \"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"李四\"");
        let e = serde_json::from_str::<Comment>(&format!("\"{}\"", "x".repeat(501))).unwrap_err().to_string();
        assert!(e.contains("评价内容过长，最多 500 个字符"), "{e}");
    }

    #[cfg(feature = "openapi")]
    #[test]
    fn openapi_schemas_carry_constraints() {
        let v = serde_json::to_value(<Notes as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(v["maxLength"], 2000);
        assert_eq!(v["type"], "string");
        let v = serde_json::to_value(<IdNumber as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(v["pattern"], "^[0-9]{17}[0-9Xx]$");
    }

    #[test]
    fn schemas_carry_constraints() {
        let s = schemars::schema_for!(Notes);
        assert_eq!(s.get("maxLength"), Some(&serde_json::json!(2000)));
        assert_eq!(s.get("type"), Some(&serde_json::json!("string")));
        let s = schemars::schema_for!(IdNumber);
        assert_eq!(s.get("minLength"), Some(&serde_json::json!(18)));
    }
}
