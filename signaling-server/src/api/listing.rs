//! Search, filters, sorting and paging for the console's long lists (#16 item 7: a district
//! has ~270 points and terminals). The lists (`/api/v1/points`, `/api/v1/terminals`,
//! `/api/v1/users`, `/api/v1/terminals/health`, `/api/v1/inspections`) keep answering a JSON
//! array, so existing clients keep working: with no parameters it is the whole list as before.
//! Every list answers `X-Total-Count`, the number of rows matching the filters before paging.
//!
//! Parameters are read as documented: numbers are plain decimal integers within their bounds,
//! texts are 1–64 characters without control characters, enumerations are exact, an unknown
//! parameter is refused (400). Lists of this size are filtered in memory after one query, so
//! derived states (online, overdue, open now) filter and sort like stored columns.
//!
//! Acceptance centers (#16 item 6): every list takes `center` (a center's id) next to `street`,
//! keeping the rows of the center's streets (and, for accounts, its operators and supervisors);
//! an unknown center matches nothing, as an unknown street does. The console's supervisor
//! pages pass their own center by default (`Listing::in_center`).

use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{ApiError, ApiResult, Json};

/// The response header carrying the number of matching rows before paging.
pub const TOTAL_HEADER: &str = "x-total-count";
/// Largest page.
pub const MAX_LIMIT: i64 = 500;
/// Largest offset.
pub const MAX_OFFSET: i64 = 100_000;

/// A strictly read integer query parameter: ASCII digits (a leading `-` only to be refused as
/// out of range), within `min..=max`.
pub fn int_param(name: &str, v: Option<&str>, min: i64, max: i64) -> ApiResult<Option<i64>> {
    let Some(s) = v else { return Ok(None) };
    let digits = s.strip_prefix('-').unwrap_or(s);
    let n = if !digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<i64>().ok()
    } else {
        None
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::bad_request(format!("{name} 须为 {min} 到 {max} 的整数 ({name} out of range)"))),
    }
}

/// A text query parameter: 1–`max` characters, no control characters, not trimmed.
pub fn text_param(name: &str, v: Option<&str>, max: usize) -> ApiResult<Option<String>> {
    let Some(s) = v else { return Ok(None) };
    let n = s.chars().count();
    if n == 0 || n > max || s.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name} 须为 1 到 {max} 个字符，不含控制字符 (invalid {name})"
        )));
    }
    Ok(Some(s.to_owned()))
}

/// An enumerated query parameter: one of `allowed`, exactly.
pub fn enum_param<'a>(name: &str, v: Option<&'a str>, allowed: &[&str]) -> ApiResult<Option<&'a str>> {
    match v {
        None => Ok(None),
        Some(s) if allowed.contains(&s) => Ok(Some(s)),
        Some(_) => {
            Err(ApiError::bad_request(format!("{name} 须为 {} 之一 (invalid {name})", allowed.join("、"))))
        }
    }
}

/// Schema pattern of an id parameter: a lower-case hyphenated UUID, exactly.
pub const UUID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// A strictly read id parameter: a lower-case hyphenated UUID ([`UUID_PATTERN`]).
pub fn uuid_param(name: &str, v: Option<&str>) -> ApiResult<Option<uuid::Uuid>> {
    let Some(v) = v else { return Ok(None) };
    match uuid::Uuid::try_parse(v) {
        Ok(id) if id.hyphenated().to_string() == v => Ok(Some(id)),
        _ => Err(ApiError::bad_request(format!("{name} 须为小写带连字符的 UUID (invalid {name})"))),
    }
}

/// The common list parameters, checked.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Lower-cased search text.
    pub q: Option<String>,
    pub street: Option<String>,
    /// The `center` filter and its streets (empty for an unknown center).
    pub center: Option<(uuid::Uuid, std::collections::BTreeSet<String>)>,
    /// The sort key (one of the list's keys) and whether descending (`-key`).
    pub sort: String,
    pub desc: bool,
    pub limit: Option<usize>,
    pub offset: usize,
}

impl Listing {
    /// Checks `q`, `street`, `sort` (one of `sorts`, optionally prefixed with `-`; absent:
    /// `default_sort`), `limit` (1–500; absent: all) and `offset` (0–100000).
    pub fn parse(
        q: Option<&str>,
        street: Option<&str>,
        sort: Option<&str>,
        limit: Option<&str>,
        offset: Option<&str>,
        sorts: &[&str],
        default_sort: &str,
    ) -> ApiResult<Self> {
        let q = text_param("q", q, 64)?.map(|s| s.to_lowercase());
        let street = text_param("street", street, 32)?;
        let (sort, desc) = match sort {
            None => (default_sort.to_owned(), false),
            Some(s) => {
                let (key, desc) = s.strip_prefix('-').map_or((s, false), |k| (k, true));
                if !sorts.contains(&key) {
                    return Err(ApiError::bad_request(format!(
                        "sort 须为 {} 之一，可加前缀 - 表示倒序 (invalid sort)",
                        sorts.join("、")
                    )));
                }
                (key.to_owned(), desc)
            }
        };
        let limit = int_param("limit", limit, 1, MAX_LIMIT)?.map(|n| usize::try_from(n).unwrap_or(0));
        let offset =
            int_param("offset", offset, 0, MAX_OFFSET)?.map_or(0, |n| usize::try_from(n).unwrap_or(0));
        Ok(Self { q, street, center: None, sort, desc, limit, offset })
    }

    /// Adds the `center` filter (strictly read; an unknown center keeps no row).
    pub async fn in_center(mut self, db: &crate::db::Db, center: Option<&str>) -> ApiResult<Self> {
        if let Some(id) = uuid_param("center", center)? {
            let streets = super::centers::streets_of_center(db, id).await?.unwrap_or_default();
            self.center = Some((id, streets));
        }
        Ok(self)
    }

    /// Whether a row of `street` (and of an account's `center`, if any) is in the wanted
    /// center; true without a center filter.
    pub fn center_has(&self, street: Option<&str>, center: Option<uuid::Uuid>) -> bool {
        self.center
            .as_ref()
            .is_none_or(|(id, streets)| center == Some(*id) || street.is_some_and(|s| streets.contains(s)))
    }

    /// Whether any of `fields` contains the search text (case-insensitive); true without one.
    pub fn matches(&self, fields: &[&str]) -> bool {
        self.q.as_deref().is_none_or(|q| fields.iter().any(|f| f.to_lowercase().contains(q)))
    }

    /// Whether `street` is the wanted street; true without a street filter.
    pub fn street_is(&self, street: &str) -> bool {
        self.street.as_deref().is_none_or(|s| s == street) && self.center_has(Some(street), None)
    }

    /// Sorts with `cmp` (ascending by the chosen key; reversed for `-key`), then pages.
    /// Returns the page and the number of rows before paging.
    pub fn finish<T>(&self, mut rows: Vec<T>, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> (Vec<T>, usize) {
        rows.sort_by(|a, b| if self.desc { cmp(b, a) } else { cmp(a, b) });
        let total = rows.len();
        let rows: Vec<T> =
            rows.into_iter().skip(self.offset).take(self.limit.unwrap_or(usize::MAX)).collect();
        (rows, total)
    }
}

/// A JSON array with its `X-Total-Count`.
pub struct Counted<T>(pub Vec<T>, pub usize);

impl<T: Serialize> IntoResponse for Counted<T> {
    fn into_response(self) -> Response {
        let mut res = Json(self.0).into_response();
        res.headers_mut().insert(HeaderName::from_static(TOTAL_HEADER), HeaderValue::from(self.1));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(int_param("limit", Some("5"), 1, 500).expect("parses"), Some(5));
        assert_eq!(int_param("limit", None, 1, 500).expect("parses"), None);
        for bad in ["", " 5", "+5", "5.0", "1e3", "501", "0", "-1", "99999999999999999999", "５"] {
            assert!(int_param("limit", Some(bad), 1, 500).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sort_and_paging() {
        let l = Listing::parse(None, None, Some("-name"), Some("2"), Some("1"), &["name"], "name")
            .expect("parses");
        let (page, total) = l.finish(vec![1, 4, 2, 3], |a, b| a.cmp(b));
        assert_eq!((page, total), (vec![3, 2], 4));
        assert!(Listing::parse(None, None, Some("name;drop"), None, None, &["name"], "name").is_err());
        assert!(Listing::parse(Some(""), None, None, None, None, &["name"], "name").is_err());
        let l = Listing::parse(Some("Ab"), None, None, None, None, &["name"], "name").expect("parses");
        assert!(l.matches(&["xaBy"]) && !l.matches(&["a b"]));
    }
}
