//! REST request and response bodies under `/api/v1`.
//!
//! Conventions: times are unix milliseconds (`*_at`), IDs are UUIDs, request bodies reject
//! unknown fields, and every error is [`ErrorBody`]. With the `openapi` feature each type
//! derives `utoipa::ToSchema` so the server's OpenAPI document is generated from these types.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::protocol::Role;

/// `{"error":{"code":"…","message":"…"}}`: the body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `unauthenticated`, `validation_failed`.
    pub code: String,
    /// Human-readable message, Chinese first.
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
}

/// One server node as it reports itself to the cluster (`GET /api/v1/admin/cluster`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterNode {
    /// The node's name (`node_id`).
    pub id: String,
    /// Where other nodes and operators reach it.
    pub url: String,
    /// Server version.
    pub version: String,
    /// Unix ms when it started.
    pub started_at: i64,
    /// Unix ms of its last report (every 2 s; a node silent for 6 s leaves the list).
    pub reported_at: i64,
    /// Open WebSocket connections.
    pub connections: u64,
    /// One-minute load average of its machine.
    pub load: f64,
    /// Draining for a restart: takes no new connections.
    pub draining: bool,
}

/// The nodes of this deployment: one in single-node mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterView {
    /// `single` (SQLite or PostgreSQL, no Redis) or `cluster` (PostgreSQL + Redis).
    pub mode: String,
    /// The node that answered.
    pub this_node: String,
    pub nodes: Vec<ClusterNode>,
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").field("username", &self.username).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub user: UserView,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 8,
            max_length = 128,
            pattern = "[a-z][\\s\\S]*[^a-z]|[^a-z][\\s\\S]*[a-z]|[A-Z][\\s\\S]*[^A-Z]|[^A-Z][\\s\\S]*[A-Z]|[0-9][\\s\\S]*[^0-9]|[^0-9][\\s\\S]*[0-9]"
        )
    )]
    pub new_password: String,
}

impl std::fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangePasswordRequest { .. }")
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// The service point a committee staff member belongs to.
    pub point_id: Option<Uuid>,
    pub active: bool,
    /// Business lines an operator serves.
    pub skills: Vec<Uuid>,
    /// The acceptance center (受理中心) an operator or supervisor belongs to.
    #[serde(default)]
    pub center_id: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Schema pattern of a free-text field the server checks with `check_text`: not blank, no
/// control characters or bidirectional overrides.
pub const TEXT_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$";

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9._-]{3,32}$"))]
    pub username: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub display_name: String,
    pub role: Role,
    #[serde(default)]
    pub point_id: Option<Uuid>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 8,
            max_length = 128,
            pattern = "[a-z][\\s\\S]*[^a-z]|[^a-z][\\s\\S]*[a-z]|[A-Z][\\s\\S]*[^A-Z]|[^A-Z][\\s\\S]*[A-Z]|[0-9][\\s\\S]*[^0-9]|[^0-9][\\s\\S]*[0-9]"
        )
    )]
    pub password: String,
    #[serde(default)]
    pub skills: Vec<Uuid>,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub display_name: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    /// `null` unbinds the point; absent leaves it unchanged.
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub point_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetSkillsRequest {
    pub line_ids: Vec<Uuid>,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 8,
            max_length = 128,
            pattern = "[a-z][\\s\\S]*[^a-z]|[^a-z][\\s\\S]*[a-z]|[A-Z][\\s\\S]*[^A-Z]|[^A-Z][\\s\\S]*[A-Z]|[0-9][\\s\\S]*[^0-9]|[^0-9][\\s\\S]*[0-9]"
        )
    )]
    pub new_password: String,
}

impl std::fmt::Debug for ResetPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetPasswordRequest { .. }")
    }
}

// ---------------------------------------------------------------------------------------------
// Service points (服务点)

/// What kind of place hosts the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    /// 居委会
    Committee,
    /// 园区
    Park,
    /// 楼宇
    Building,
    /// 党群服务中心
    PartyCenter,
}

impl PointKind {
    pub const ALL: [PointKind; 4] =
        [PointKind::Committee, PointKind::Park, PointKind::Building, PointKind::PartyCenter];

    pub fn as_str(self) -> &'static str {
        match self {
            PointKind::Committee => "committee",
            PointKind::Park => "park",
            PointKind::Building => "building",
            PointKind::PartyCenter => "party_center",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            PointKind::Committee => "居委会",
            PointKind::Park => "园区",
            PointKind::Building => "楼宇",
            PointKind::PartyCenter => "党群服务中心",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PointStatus {
    Open,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointView {
    pub id: Uuid,
    /// Short code used on tickets and enrollment files, e.g. `JA-HS01`.
    pub code: String,
    pub name: String,
    /// 街镇
    pub street: String,
    /// 居委会
    pub committee: String,
    pub kind: PointKind,
    pub address: String,
    pub longitude: f64,
    pub latitude: f64,
    pub opening_hours: String,
    /// 巡检责任人
    pub inspector_name: String,
    pub inspector_phone: String,
    pub status: PointStatus,
    pub closed_reason: Option<String>,
    pub closed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Incremented by every change; send it back as `expected_version` to avoid lost updates.
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePointRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Z0-9-]{2,16}$"))]
    pub code: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub name: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub street: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub committee: String,
    pub kind: PointKind,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 128,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub address: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 73.0, maximum = 136.0))]
    pub longitude: f64,
    #[cfg_attr(feature = "openapi", schema(minimum = 3.0, maximum = 54.0))]
    pub latitude: f64,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 128,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub opening_hours: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub inspector_name: String,
    #[cfg_attr(feature = "openapi", schema(pattern = "^\\s*[0-9-]{5,20}\\s*$"))]
    pub inspector_phone: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdatePointRequest {
    /// When given, the change is refused with 409 unless the point is still at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub name: Option<String>,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub street: Option<String>,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub committee: Option<String>,
    #[serde(default)]
    pub kind: Option<PointKind>,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 128,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub address: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 73.0, maximum = 136.0))]
    pub longitude: Option<f64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 3.0, maximum = 54.0))]
    pub latitude: Option<f64>,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 128,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub opening_hours: Option<String>,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub inspector_name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^\\s*[0-9-]{5,20}\\s*$"))]
    pub inspector_phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClosePointRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 200,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointHistoryEntry {
    pub version: i64,
    pub changed_at: i64,
    pub actor_id: Option<Uuid>,
    /// `created`, `updated`, `closed` or `reopened`.
    pub action: String,
    /// The point as it was after this change.
    pub point: PointView,
}

// ---------------------------------------------------------------------------------------------
// Service catalog (条线 and 事项)

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineView {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub sort_order: i64,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateLineRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{2,32}$"))]
    pub code: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub name: String,
    #[serde(default)]
    pub sort_order: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateLineRequest {
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub name: Option<String>,
    #[serde(default)]
    pub sort_order: Option<i64>,
    #[serde(default)]
    pub active: Option<bool>,
}

/// How a required material travels from the resident to the department (材料流转).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MaterialTransfer {
    /// 现场扫描上传
    Scan,
    /// 原件事后寄送
    Courier,
    /// 现场打印签字
    PrintSign,
}

impl MaterialTransfer {
    pub const ALL: [MaterialTransfer; 3] =
        [MaterialTransfer::Scan, MaterialTransfer::Courier, MaterialTransfer::PrintSign];

    pub fn as_str(self) -> &'static str {
        match self {
            MaterialTransfer::Scan => "scan",
            MaterialTransfer::Courier => "courier",
            MaterialTransfer::PrintSign => "print_sign",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            MaterialTransfer::Scan => "现场扫描上传",
            MaterialTransfer::Courier => "原件事后寄送",
            MaterialTransfer::PrintSign => "现场打印签字",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaterialRequirement {
    /// Server-assigned; ignored on input.
    #[serde(default)]
    pub id: Option<Uuid>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub name: String,
    pub transfer: MaterialTransfer,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 200, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub note: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemView {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub line_id: Uuid,
    pub line_name: String,
    /// Whether the item may be handled at a remote virtual window.
    pub remote_allowed: bool,
    pub description: String,
    pub active: bool,
    pub materials: Vec<MaterialRequirement>,
    /// The streets (街镇) whose points offer the item; empty = offered everywhere.
    #[serde(default)]
    pub streets: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateItemRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{2,32}$"))]
    pub code: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub name: String,
    pub line_id: Uuid,
    pub remote_allowed: bool,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 1000, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub description: String,
    #[serde(default)]
    pub materials: Vec<MaterialRequirement>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateItemRequest {
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub name: Option<String>,
    #[serde(default)]
    pub line_id: Option<Uuid>,
    #[serde(default)]
    pub remote_allowed: Option<bool>,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 1000, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub description: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    /// When given, replaces the whole materials list.
    #[serde(default)]
    pub materials: Option<Vec<MaterialRequirement>>,
}

// ---------------------------------------------------------------------------------------------
// Terminals

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TerminalStatus {
    /// Registered; waiting for its enrollment code to be used.
    Pending,
    Active,
    Revoked,
}

/// What a terminal's resident is told before taking a ticket
/// (`GET /api/v1/terminals/me/availability`): whether the point takes tickets now, and for each
/// line with remotely available items who serves it and how long a new ticket would wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalAvailability {
    /// The point takes tickets now (its opening hours by the working-day calendar; a point
    /// without structured hours is always open).
    pub open: bool,
    /// When closed: when it opens next (Unix ms), if within 60 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_open_at: Option<i64>,
    /// When closed: the sentence for the resident, e.g.
    /// `本服务点现在不开放，下次开放：12月7日（周一）09:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_message: Option<String>,
    pub lines: Vec<LineAvailability>,
}

/// Who serves a line now and how long a ticket taken now would wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineAvailability {
    pub line_id: Uuid,
    /// Operators serving the line now (signed in, available or in a call, with its skill);
    /// `0`: 当前无人值守.
    pub serving: u32,
    /// Tickets waiting on the line.
    pub waiting: u32,
    /// The wait of a ticket taken now, as a range; absent when nobody serves the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<crate::protocol::WaitRange>,
    /// When nobody serves the line: when its duty roster next brings someone on (Unix ms), if
    /// the line has a roster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_staffed_at: Option<i64>,
}

/// A line's duty roster (`/api/v1/lines/{id}/roster`): when operators are on duty for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineRosterView {
    pub line_id: Uuid,
    /// `None` until an admin sets it.
    pub schedule: Option<crate::cases::OpeningHours>,
    /// The next seven days from today (China time), with the hours on duty.
    pub week: Vec<crate::cases::OpeningDay>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalView {
    pub id: Uuid,
    pub point_id: Uuid,
    pub point_name: String,
    /// The point's street (街镇).
    #[serde(default)]
    pub point_street: String,
    pub name: String,
    pub status: TerminalStatus,
    pub enrollment_expires_at: Option<i64>,
    pub enrolled_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterTerminalRequest {
    pub point_id: Uuid,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub name: String,
}

/// Returned once, when a terminal is registered or given a new enrollment code.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentCodeResponse {
    pub terminal: TerminalView,
    /// One-time code, e.g. `K7QF-3MZD-W9XA`; shown to the admin once, stored only hashed.
    pub enrollment_code: String,
    pub expires_at: i64,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub code: String,
}

impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnrollRequest { .. }")
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    pub terminal_id: Uuid,
    pub point_id: Uuid,
    pub point_code: String,
    /// Long-lived device credential; keep it in a file readable only by the terminal's user.
    pub credential: String,
}

impl std::fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollResponse").field("terminal_id", &self.terminal_id).finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceTokenRequest {
    pub credential: String,
}

impl std::fmt::Debug for DeviceTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceTokenRequest { .. }")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceTokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub terminal_id: Uuid,
    pub point_id: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeTerminalRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 200,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub reason: String,
}

// ---------------------------------------------------------------------------------------------
// Terminal health (heartbeat every 30 s; offline alarm after 2 min without one)

/// Largest heartbeat body the server accepts.
pub const HEALTH_MAX_BODY: usize = 16 * 1024;
/// Longest free-text field (`detail`) of a heartbeat, in characters.
pub const HEALTH_MAX_DETAIL: usize = 200;
/// Most printer-state-reasons a heartbeat may carry, each at most [`HEALTH_MAX_REASON`] bytes.
pub const HEALTH_MAX_REASONS: usize = 16;
pub const HEALTH_MAX_REASON: usize = 64;
/// Longest `version` string.
pub const HEALTH_MAX_VERSION: usize = 64;

/// A camera, microphone or scanner as the terminal sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Ok,
    Fault,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceHealth {
    pub state: DeviceState,
    /// e.g. `test source`, `/dev/video0`, the scanner's fault; ≤ 200 characters.
    #[serde(default)]
    pub detail: Option<String>,
}

/// The printer's IPP `printer-state` (3 idle, 4 processing, 5 stopped), or why it is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PrinterState {
    Idle,
    Processing,
    Stopped,
    /// CUPS did not answer.
    Unreachable,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrinterHealth {
    pub state: PrinterState,
    /// IPP `printer-state-reasons` without `none`, e.g. `media-empty-error`; ≤ 16 of ≤ 64 bytes,
    /// lowercase ASCII letters, digits and `-`.
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl PrinterHealth {
    /// A fault worth an alarm: the printer stopped, or a reason ends in `-error`.
    pub fn fault(&self) -> Option<String> {
        let errors: Vec<&str> =
            self.reasons.iter().filter(|r| r.ends_with("-error")).map(String::as_str).collect();
        if self.state == PrinterState::Stopped || !errors.is_empty() {
            let reasons = if errors.is_empty() { self.reasons.join(",") } else { errors.join(",") };
            Some(if reasons.is_empty() { "stopped".to_owned() } else { reasons })
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DiskHealth {
    /// Bytes available to the terminal's user on the file system of its state directory.
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// Bytes the terminal's own state takes (spool, print records, recordings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// The bound on `used_bytes` (`storage.max_bytes` of the terminal's configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// The free space the terminal keeps on its file system (`storage.min_free_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_free_bytes: Option<u64>,
    /// Where the terminal stands against its bound; `near_full` and `full` raise a
    /// `disk_space` alarm. Left out when `ok`.
    #[serde(default, skip_serializing_if = "DiskLevel::is_ok")]
    pub level: DiskLevel,
}

/// The terminal's disk use against its bound (`storage` in its configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DiskLevel {
    #[default]
    Ok,
    /// `storage.alarm_percent` of the bound reached (or the free space within that margin of
    /// the minimum): still working, a technician should look.
    NearFull,
    /// At the bound after deleting what may go: new scans are refused.
    Full,
}

impl DiskLevel {
    pub fn is_ok(&self) -> bool {
        *self == DiskLevel::Ok
    }
}

impl DiskHealth {
    /// A state worth an alarm (`near_full` or `full`), with what the console shows.
    pub fn alarm(&self) -> Option<String> {
        let what = match self.level {
            DiskLevel::Ok => return None,
            DiskLevel::NearFull => "存储空间将满 (near_full)",
            DiskLevel::Full => "存储空间已满，暂停扫描 (full)",
        };
        let mib = |b: u64| b / (1024 * 1024);
        let used = match (self.used_bytes, self.max_bytes) {
            (Some(u), Some(m)) => {
                let pct =
                    u.saturating_mul(100).checked_div(m).map(|p| format!(" ({p}%)")).unwrap_or_default();
                format!("；已用 {} / {} MiB{pct}", mib(u), mib(m))
            }
            _ => String::new(),
        };
        Some(format!("{what}{used}；剩余 {} MiB", mib(self.free_bytes)))
    }
}

/// `POST /api/v1/terminals/me/health`: what a terminal reports every 30 s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TerminalHealthReport {
    pub camera: DeviceHealth,
    pub microphone: DeviceHealth,
    pub printer: PrinterHealth,
    pub scanner: DeviceHealth,
    /// `None` when the file system could not be asked.
    #[serde(default)]
    pub disk: Option<DiskHealth>,
    /// The endpoint-client's version, e.g. `0.1.0`.
    pub version: String,
    pub uptime_secs: u64,
    /// A call is in progress.
    #[serde(default)]
    pub in_call: bool,
}

impl TerminalHealthReport {
    /// Checks every bound of an untrusted report; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        fn text(field: &str, v: &str, max: usize) -> Result<(), String> {
            if v.chars().count() > max {
                return Err(format!("{field} 超过 {max} 个字符 (too long)"));
            }
            if v.chars().any(|c| c.is_control() || crate::validate::is_forbidden_format(c)) {
                return Err(format!("{field} 含有控制字符 (control characters)"));
            }
            Ok(())
        }
        for (name, d) in
            [("camera", &self.camera), ("microphone", &self.microphone), ("scanner", &self.scanner)]
        {
            text(&format!("{name}.detail"), d.detail.as_deref().unwrap_or(""), HEALTH_MAX_DETAIL)?;
        }
        text("printer.detail", self.printer.detail.as_deref().unwrap_or(""), HEALTH_MAX_DETAIL)?;
        if self.printer.reasons.len() > HEALTH_MAX_REASONS {
            return Err(format!("printer.reasons 最多 {HEALTH_MAX_REASONS} 项 (too many)"));
        }
        if self.printer.reasons.iter().any(|r| {
            r.is_empty()
                || r.len() > HEALTH_MAX_REASON
                || !r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }) {
            return Err("printer.reasons 须为小写字母、数字和 - (invalid reason)".into());
        }
        if self.version.trim().is_empty() {
            return Err("version 不能为空 (must not be empty)".into());
        }
        text("version", &self.version, HEALTH_MAX_VERSION)?;
        if let Some(d) = self.disk
            && d.free_bytes > d.total_bytes
        {
            return Err("disk.free_bytes 不能大于 total_bytes (free > total)".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// No heartbeat (nor any other contact) for longer than the offline threshold.
    Offline,
    /// The last heartbeat showed the printer stopped or in an error state.
    PrinterFault,
    /// The last heartbeat showed the terminal's disk use near or at its bound.
    DiskSpace,
}

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Offline => "offline",
            AlarmKind::PrinterFault => "printer_fault",
            AlarmKind::DiskSpace => "disk_space",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "offline" => Some(AlarmKind::Offline),
            "printer_fault" => Some(AlarmKind::PrinterFault),
            "disk_space" => Some(AlarmKind::DiskSpace),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalAlarmView {
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub id: Uuid,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub terminal_id: Uuid,
    pub terminal_name: String,
    pub point_name: String,
    pub kind: AlarmKind,
    pub opened_at: i64,
    /// `None` while the alarm is open.
    pub cleared_at: Option<i64>,
    /// e.g. the last contact time for `offline`, the printer's reasons for `printer_fault`, the
    /// disk use against its bound for `disk_space`.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalAlarmPage {
    pub alarms: Vec<TerminalAlarmView>,
    /// Pass as `offset` for the next page; `None` on the last page.
    pub next_offset: Option<i64>,
}

/// `GET /api/v1/terminals/health`: one active terminal's health as admins and supervisors see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalHealthView {
    pub terminal_id: Uuid,
    pub name: String,
    pub point_id: Uuid,
    pub point_name: String,
    /// The point's street (街镇).
    #[serde(default)]
    pub point_street: String,
    pub status: TerminalStatus,
    /// Last contact of any kind (heartbeat, token, connection).
    pub last_seen_at: Option<i64>,
    /// Seen within the offline threshold.
    pub online: bool,
    /// When the last heartbeat arrived, and what it said.
    pub reported_at: Option<i64>,
    pub report: Option<TerminalHealthReport>,
    /// Open alarms, oldest first.
    pub alarms: Vec<TerminalAlarmView>,
}

/// `GET /api/v1/points/{id}/today`: one service point's day as its committee staff see it —
/// its terminals' health, today's tickets, print jobs, open work orders and call-backs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointToday {
    pub point_id: Uuid,
    pub point_name: String,
    /// The service day, `YYYY-MM-DD` (China time).
    pub date: String,
    /// Open now by its structured hours; `None` without them (always open).
    pub open_now: Option<bool>,
    /// Its terminals that are not revoked, with their last heartbeat and open alarms.
    pub terminals: Vec<TerminalHealthView>,
    /// Today's tickets at the point, oldest first (at most 500); no personal data.
    pub tickets: Vec<PointTicket>,
    /// Today's print jobs at the point, newest first (at most 200).
    pub print_jobs: Vec<PointPrintJob>,
    /// Work orders of the point not yet completed, soonest due first (at most 200).
    pub orders: Vec<PointOrder>,
    /// Open call-backs (回访) of the point's orders and calls, soonest due first (at most 200).
    pub callbacks: Vec<PointCallback>,
    /// The point's inspection schedule and where it stands (巡检); `None` without a schedule.
    pub inspection: Option<InspectionDueView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointTicket {
    pub id: Uuid,
    pub number: String,
    pub item_name: String,
    /// `waiting`, `in_call`, `served`, `cancelled` or `abandoned`.
    pub status: String,
    pub created_at: i64,
    pub closed_at: Option<i64>,
    /// The staff member who helped the resident at the kiosk, if any.
    pub assisted_by_name: Option<String>,
    /// Helped by the caller.
    pub helped_by_me: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointPrintJob {
    pub id: Uuid,
    pub terminal_name: String,
    /// `pending`, `claimed`, `queued`, `printing`, `completed`, `failed`, `cancelled` or `expired`.
    pub state: String,
    /// The printer's reason on failure.
    pub reason: Option<String>,
    pub copies: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointOrder {
    pub id: Uuid,
    pub number: String,
    pub summary: String,
    /// `accepted`, `classified` or `transferred`.
    pub state: String,
    pub due_at: i64,
    pub overdue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointCallback {
    pub id: Uuid,
    /// What it follows up: `rectification`, `order`, `good_rating` or `home_visit`.
    pub kind: String,
    /// The order's number when it follows up an order.
    pub order_number: Option<String>,
    pub due_at: i64,
}

// ---------------------------------------------------------------------------------------------
// Audit log

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub seq: i64,
    pub id: Uuid,
    pub at: i64,
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    pub source_ip: Option<String>,
    /// e.g. `auth.login`, `point.update`, `terminal.revoke`.
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
    /// SHA-256 over the previous entry's hash and this entry's fields.
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` to read the next (older) page.
    pub next_before: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditVerifyResponse {
    pub intact: bool,
    pub checked: u64,
    /// The first entry whose hash does not match, if any (or, when newest entries were
    /// deleted, the first one a signed checkpoint says existed).
    pub first_broken_seq: Option<i64>,
    /// The newest signed checkpoint (kept outside the database) that the chain matched.
    #[serde(default)]
    pub anchored_seq: Option<i64>,
}

/// Serde helper: distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(inner) => inner.serialize(s),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

// ---------------------------------------------------------------------------------------------
// Session records and statistics (no resident data in any of them)

/// One call session as listed for supervision (办件记录). Never carries the resident's name or
/// ID number, not even masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionRecord {
    pub session_id: Uuid,
    pub ticket_id: Uuid,
    /// The ticket number shown to the resident, e.g. `A012`.
    pub ticket_number: String,
    pub point_id: Uuid,
    pub point_name: String,
    pub item_name: String,
    pub line_id: Uuid,
    pub line_name: String,
    pub operator_id: Uuid,
    pub operator_name: String,
    /// `active`, `held`, `ended` or `closed`.
    pub status: String,
    /// When the operator accepted.
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// From taking the ticket (or the transfer) until the operator accepted.
    pub wait_ms: i64,
    /// Ticket taken until first answered; only on the ticket's first session.
    pub first_response_ms: Option<i64>,
    /// `ended_at − started_at`, once ended.
    pub handle_ms: Option<i64>,
    pub outcome: Option<crate::protocol::Outcome>,
    pub outcome_zh: Option<String>,
    pub end_reason: Option<String>,
    pub rating: Option<crate::protocol::RatingLevel>,
    pub rating_zh: Option<String>,
    pub rating_comment: Option<String>,
    /// The previous session of the same ticket, when this one came from a transfer.
    pub transferred_from: Option<Uuid>,
}

/// Count of ratings per level (好差评).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RatingCounts {
    pub very_satisfied: u64,
    pub satisfied: u64,
    pub basic: u64,
    pub dissatisfied: u64,
    pub very_dissatisfied: u64,
}

/// Figures over `[from, to)`. Tickets count by creation time, everything else by the session's
/// start; percentages have one decimal and are `null` when there is nothing to divide by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsSummary {
    pub from: i64,
    pub to: i64,
    /// Tickets taken.
    pub tickets: u64,
    /// Sessions an operator accepted.
    pub served_sessions: u64,
    /// Of the tickets answered at all, the share first answered within 60 s.
    pub first_response_within_60s_pct: Option<f64>,
    /// Mean session wait, seconds.
    pub avg_wait_secs: Option<f64>,
    /// 90th percentile session wait (nearest rank), seconds.
    pub p90_wait_secs: Option<f64>,
    /// Wrapped sessions with outcome `completed` or `accepted_pending_approval`, over all
    /// wrapped sessions.
    pub resolution_rate_pct: Option<f64>,
    pub ratings: RatingCounts,
    /// `dissatisfied` + `very_dissatisfied`.
    pub negative_ratings: u64,
    /// Rectifications of these sessions still open.
    pub open_rectifications: u64,
    /// Of those, past their due time.
    pub overdue_rectifications: u64,
}

/// One China Standard Time day of figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyStats {
    /// `YYYY-MM-DD`, China Standard Time.
    pub day: String,
    #[serde(flatten)]
    pub stats: StatsSummary,
}

// ---------------------------------------------------------------------------------------------
// Rectifications (差评整改)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RectificationStatus {
    Open,
    Closed,
}

/// A negative rating awaiting (or having had) its call-back and rectification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RectificationView {
    pub id: Uuid,
    pub session_id: Uuid,
    pub ticket_id: Uuid,
    pub ticket_number: String,
    pub point_name: String,
    pub item_name: String,
    pub operator_id: Uuid,
    pub operator_name: String,
    pub level: crate::protocol::RatingLevel,
    pub level_zh: String,
    pub comment: Option<String>,
    pub status: RectificationStatus,
    pub created_at: i64,
    /// 15 working days after the rating.
    pub due_at: i64,
    /// Still open after `due_at`, or closed after it.
    pub overdue: bool,
    /// 回访
    pub callback_at: Option<i64>,
    pub callback_result: Option<String>,
    /// 整改措施
    pub rectification: Option<String>,
    pub closed_by: Option<Uuid>,
    pub closed_by_name: Option<String>,
    pub closed_at: Option<i64>,
}

/// Records the call-back (回访) and closes the rectification.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RectificationCallbackRequest {
    /// What the resident said on the call-back; 1–500 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub callback_result: String,
    /// The measures taken (整改措施); up to 1000 characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 1000, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub rectification: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Materials (办事材料) and remote printing. These views also travel over the WebSocket
// (`material_changed`, `print_job_changed`), hence the JSON Schema derives.

/// Who produced a material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MaterialSource {
    /// Scanned at the service point by the terminal.
    Scan,
    /// Uploaded by the operator (a form to print).
    Form,
    /// The call recorded by the terminal with the resident's consent (WebM/Matroska): only
    /// supervisors and admins see or play it.
    Recording,
}

/// Where a material is in its review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MaterialStatus {
    /// Stored, not yet looked at by the operator.
    Uploaded,
    /// The operator opened it.
    Viewed,
    /// 审核通过
    Accepted,
    /// 退回: the terminal asks the resident to scan again.
    Rejected,
}

/// A recorded call, for supervisors' quality checks (`GET /api/v1/recordings`); each part plays
/// from `/api/v1/materials/{material_id}/content` (audited `recording.play`). `material_id`,
/// `size` and `content_type` describe part 1 (the terminal's side; a recording stored before
/// parts existed is one file of four tracks and has only this part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordingView {
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub material_id: Uuid,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub session_id: Uuid,
    pub ticket_number: String,
    pub item_name: String,
    pub point_name: String,
    pub operator_name: String,
    /// When the call started and ended (Unix ms).
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// When the recording was stored (Unix ms; the paging cursor).
    pub created_at: i64,
    pub size: u64,
    pub content_type: String,
    /// The content was deleted under the retention rule.
    pub purged: bool,
    /// The recording's length as the terminal measured it (ms); absent for older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Every stored part, in order: 1 = the terminal's camera and microphone, 2 = the operator's
    /// camera and voice (both written on one clock from the same start, played side by side).
    #[serde(default)]
    pub parts: Vec<RecordingPart>,
}

/// One file of a recorded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordingPart {
    /// 1: the terminal's camera and microphone; 2: the operator's camera and voice.
    pub part: u8,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub material_id: Uuid,
    pub size: u64,
    pub content_type: String,
    /// The content was deleted under the retention rule.
    pub purged: bool,
}

/// A stored material (metadata only; content at `/api/v1/materials/{id}/content`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaterialView {
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub id: Uuid,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub session_id: Uuid,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub ticket_id: Uuid,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub item_id: Uuid,
    /// The required-material slot (`item_materials`) this fills, if any.
    #[schemars(with = "Option<crate::protocol::UuidSchema>")]
    pub slot_id: Option<Uuid>,
    pub slot_name: Option<String>,
    pub source: MaterialSource,
    /// The uploader's file name, sanitised for display; never used as a path.
    pub filename: String,
    /// Decided by content: `application/pdf`, `image/jpeg`, `image/png` or `image/tiff`.
    pub content_type: String,
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    pub status: MaterialStatus,
    pub reject_reason: Option<String>,
    pub has_thumbnail: bool,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub uploaded_by: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
    pub reviewed_at: Option<i64>,
    /// When the session ended; the content is purged a configured time after.
    pub archived_at: Option<i64>,
    /// The content has been deleted under the retention rule; metadata remains.
    pub purged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Accept,
    Reject,
}

/// The operator's verdict on a material; rejecting needs a reason (shown to the resident).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReviewMaterialRequest {
    pub decision: ReviewDecision,
    /// Required to reject; 1–200 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What the retention purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PurgeReport {
    /// Materials newly archived because their session ended.
    pub archived: u64,
    /// Materials whose content was deleted (retention expired).
    pub purged: u64,
    /// Encrypted objects deleted from the store.
    pub objects_deleted: u64,
    /// Abandoned partial uploads removed.
    pub uploads_expired: u64,
    /// Print jobs that expired unprinted.
    pub print_jobs_expired: u64,
    /// Inspection photos deleted (taken longer ago than the retention; the inspection record
    /// and its checklist stay).
    #[serde(default)]
    pub inspection_photos_purged: u64,
}

/// State of a print job. `pending` → `claimed` (by the terminal) → `queued` → `printing` →
/// `completed` or `failed`; `cancelled` by the operator; `expired` when the terminal did not
/// take it in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PrintJobState {
    Pending,
    Claimed,
    Queued,
    Printing,
    Completed,
    Failed,
    Cancelled,
    Expired,
}

impl PrintJobState {
    pub fn as_str(self) -> &'static str {
        match self {
            PrintJobState::Pending => "pending",
            PrintJobState::Claimed => "claimed",
            PrintJobState::Queued => "queued",
            PrintJobState::Printing => "printing",
            PrintJobState::Completed => "completed",
            PrintJobState::Failed => "failed",
            PrintJobState::Cancelled => "cancelled",
            PrintJobState::Expired => "expired",
        }
    }

    /// No further change is possible.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PrintJobState::Completed
                | PrintJobState::Failed
                | PrintJobState::Cancelled
                | PrintJobState::Expired
        )
    }
}

/// A document sent to a service point's printer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrintJobView {
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub id: Uuid,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub session_id: Uuid,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub point_id: Uuid,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub terminal_id: Uuid,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub operator_id: Uuid,
    #[schemars(with = "crate::protocol::UuidSchema")]
    pub material_id: Uuid,
    pub filename: String,
    /// Hex SHA-256 of the document: the terminal checks it before printing.
    pub sha256: String,
    pub size: u64,
    pub copies: u32,
    pub state: PrintJobState,
    /// Printer-state reason of a failure (e.g. `media-empty`).
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Unclaimed jobs expire at this time.
    pub expires_at: i64,
}

/// Send a stored PDF (a material of the session) to the session's service point.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePrintJobRequest {
    pub material_id: Uuid,
    /// Client-chosen, 1–64 characters; repeating a request with the same key returns the same
    /// job instead of printing twice.
    pub idempotency_key: String,
    /// 1–10, default 1.
    #[serde(default)]
    pub copies: Option<u32>,
}

/// A terminal takes a job for printing. The token is the terminal's own (persist it before
/// claiming): presenting it again after a restart succeeds, any other token gets 409.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimPrintJobRequest {
    /// 16–128 printable ASCII characters.
    #[cfg_attr(feature = "openapi", schema(pattern = "^\\s*[!-~]{16,128}\\s*$"))]
    pub claim_token: String,
}

/// A printer state reported by the terminal: `queued`, `printing`, `completed` or `failed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrintJobStateRequest {
    pub state: PrintJobState,
    /// The printer's reason (IPP `printer-state-reasons`, e.g. `media-empty`); required for
    /// `failed`; ≤ 200 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A resident's personal data revealed in full (audited). Never cached by clients.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevealedResident {
    pub name: Option<String>,
    pub id_number: Option<String>,
}

impl std::fmt::Debug for RevealedResident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevealedResident { .. }")
    }
}

// ---------------------------------------------------------------------------------------------
// Inspections (巡检)

/// How often a point is inspected: every week, every other week, or monthly (the first given
/// weekday of each month).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InspectionFrequency {
    /// 每周
    Weekly,
    /// 每两周
    Biweekly,
    /// 每月（当月第一个该星期几）
    Monthly,
}

/// The nine checklist items of an inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InspectionItem {
    /// 一体机
    Terminal,
    /// 双屏显示
    Screens,
    /// 摄像头
    Camera,
    /// 麦克风
    Microphone,
    /// 扫描仪 / 高拍仪
    Scanner,
    /// 打印机与纸张
    Printer,
    /// 网络
    Network,
    /// 公示信息
    Notices,
    /// 环境卫生
    Cleanliness,
}

impl InspectionItem {
    pub const ALL: [InspectionItem; 9] = [
        InspectionItem::Terminal,
        InspectionItem::Screens,
        InspectionItem::Camera,
        InspectionItem::Microphone,
        InspectionItem::Scanner,
        InspectionItem::Printer,
        InspectionItem::Network,
        InspectionItem::Notices,
        InspectionItem::Cleanliness,
    ];

    /// The item as the checklist names it.
    pub fn zh(self) -> &'static str {
        match self {
            InspectionItem::Terminal => "一体机",
            InspectionItem::Screens => "双屏显示",
            InspectionItem::Camera => "摄像头",
            InspectionItem::Microphone => "麦克风",
            InspectionItem::Scanner => "扫描仪",
            InspectionItem::Printer => "打印机与纸张",
            InspectionItem::Network => "网络",
            InspectionItem::Notices => "公示信息",
            InspectionItem::Cleanliness => "环境卫生",
        }
    }
}

/// Where a point's inspection stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InspectionState {
    /// 未到期: the current period's due day is still ahead.
    Upcoming,
    /// 待巡检: due today or in its grace days.
    Due,
    /// 已超期: a due inspection was not recorded within its grace days.
    Overdue,
    /// 本期已巡检
    Done,
}

/// `PUT /api/v1/points/{id}/inspection-schedule`: a point's inspection schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InspectionScheduleRequest {
    pub frequency: InspectionFrequency,
    /// ISO weekday of the inspection, 1 = Monday … 7 = Sunday. A day off by the working-day
    /// calendar moves it to the next working day of its period.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 7))]
    pub weekday: u8,
    /// First day of the schedule, `YYYY-MM-DD` (China time), within a year of today; default
    /// today. It fixes which weeks a bi-weekly schedule falls on.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub starts_on: Option<String>,
    /// Working days after the due day before the inspection is overdue, 0–5 (default 2).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 5))]
    pub grace_working_days: Option<u8>,
    /// The account of the point's inspector (staff of the point, a supervisor or an admin), who
    /// is told of overdue inspections and device alarms in the console; `null`: nobody by
    /// account (the point's inspector name and phone still get the webhook messages).
    #[serde(default)]
    pub inspector_account_id: Option<Uuid>,
}

/// A point's inspection schedule and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InspectionDueView {
    pub point_id: Uuid,
    pub point_code: String,
    pub point_name: String,
    pub street: String,
    /// The point's inspector (巡检负责人) and phone, as registered with the point.
    pub inspector_name: String,
    pub inspector_phone: String,
    pub inspector_account_id: Option<Uuid>,
    pub inspector_account_name: Option<String>,
    pub frequency: InspectionFrequency,
    pub weekday: u8,
    pub starts_on: String,
    pub grace_working_days: u8,
    pub state: InspectionState,
    /// The due day (`YYYY-MM-DD`) the state is about: the missed one when overdue, else the
    /// current period's (or the next one when this period is done).
    pub due_on: Option<String>,
    /// When the missed inspection became overdue.
    pub overdue_since: Option<i64>,
    /// The last inspection recorded at the point, and how many of its items failed.
    pub last_inspected_at: Option<i64>,
    pub last_failed: Option<i64>,
}

/// One checklist entry of an inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InspectionCheck {
    pub item: InspectionItem,
    /// Passed (合格) or failed (不合格). A failed item opens a problem (整改) on the problem list.
    pub ok: bool,
    /// What was found, ≤ 200 characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 200, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub note: Option<String>,
}

/// `POST /api/v1/points/{id}/inspections`: an inspection done now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InspectionRecordRequest {
    /// Each of the nine items exactly once.
    #[cfg_attr(feature = "openapi", schema(min_items = 9, max_items = 9))]
    pub checklist: Vec<InspectionCheck>,
    /// A remark on the whole inspection, ≤ 500 characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 500, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub note: Option<String>,
}

/// A photo of an inspection (stored encrypted like materials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InspectionPhotoView {
    pub id: Uuid,
    pub record_id: Uuid,
    /// `image/jpeg` or `image/png`, by content.
    pub content_type: String,
    pub size: u64,
    pub created_at: i64,
}

/// A recorded inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InspectionRecordView {
    pub id: Uuid,
    pub point_id: Uuid,
    pub inspected_at: i64,
    pub inspector_id: Uuid,
    pub inspector_name: String,
    pub checklist: Vec<InspectionCheck>,
    pub failed: i64,
    pub note: Option<String>,
    /// Problems (整改) opened for the failed items.
    pub problem_ids: Vec<Uuid>,
    pub photos: Vec<InspectionPhotoView>,
}

/// `GET /api/v1/points/{id}/inspections`: a point's schedule and state, and its latest
/// inspections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointInspections {
    pub point_id: Uuid,
    pub point_name: String,
    /// `None` when the point has no inspection schedule.
    pub schedule: Option<InspectionDueView>,
    /// Newest first, at most 50.
    pub records: Vec<InspectionRecordView>,
}

// ---------------------------------------------------------------------------------------------
// Acceptance centers (受理中心, issue 16 item 6)

/// An acceptance center: its streets' points are served by its operators first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CenterView {
    pub id: Uuid,
    pub name: String,
    /// The streets (街镇) it owns, sorted; a street belongs to at most one center.
    pub streets: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Most streets one center or one item may list.
pub const MAX_STREETS: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateCenterRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub name: String,
    /// Each ≤ 32 characters, no duplicates, none owned by another center.
    #[serde(default)]
    pub streets: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateCenterRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub name: Option<String>,
    /// Replaces the center's streets when present.
    pub streets: Option<Vec<String>>,
}

/// An account's acceptance center (operators and supervisors only); `null` = none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetCenterRequest {
    pub center_id: Option<Uuid>,
}

/// The streets whose points offer an item; empty = everywhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetItemStreetsRequest {
    /// Each ≤ 32 characters (the schema's bounds are set in the server's OpenAPI `finish`).
    pub streets: Vec<String>,
}
