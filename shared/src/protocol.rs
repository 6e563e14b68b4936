//! The Bangban WebSocket protocol, version 1 (subprotocol `bangban.v1`).
//!
//! Every frame is one UTF-8 JSON text frame of at most [`MAX_FRAME_BYTES`], holding one object
//! whose `type` field names the message: [`ClientMsg`] from terminals and consoles to the
//! server, [`ServerMsg`] back. Nested tagged objects ([`Signal`], [`TransferTarget`]) use `kind`.
//! `docs/protocol.md` is the prose specification; its JSON examples are checked by the tests.
//!
//! Strictness: the server is strict about what it accepts ([`ClientMsg`] and its nested types
//! reject unknown fields), clients are tolerant about what they receive ([`ServerMsg`] ignores
//! unknown fields and maps unknown reason/error codes to `unknown`, and a client should skip a
//! frame that fails with [`DecodeError::UnknownType`]), so the server can add optional fields
//! and new message types within version 1 without breaking deployed terminals.
//!
//! Decode untrusted frames only with [`ClientMsg::decode`] / [`ServerMsg::decode`]: they enforce
//! the frame limit before parsing, never panic, and return errors that are safe to log and to
//! echo (string values from the frame are redacted).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validate::{Comment, IceCandidate, IdNumber, Notes, PersonName, Sdp, SdpMid, Token};

/// The protocol version carried in `hello.v` and `welcome.v`.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest accepted WebSocket message (either direction), in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// The `Sec-WebSocket-Protocol` value of this version.
pub const SUBPROTOCOL: &str = "bangban.v1";
/// Prefix of the second `Sec-WebSocket-Protocol` entry that carries a JWT (`bearer.<JWT>`).
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "bearer.";
/// Clients send `ping` this often.
pub const HEARTBEAT_SECS: u64 = 15;
/// The server closes a connection it has heard nothing from for this long (3 heartbeats).
pub const IDLE_TIMEOUT_SECS: u64 = 3 * HEARTBEAT_SECS;
/// How long after a disconnect a `hello` with `resume` restores the connection's state.
pub const RESUME_WINDOW_SECS: u64 = 60;

/// JSON Schema for a UUID (schemars is built without its `uuid1` feature).
pub(crate) struct UuidSchema;

impl JsonSchema for UuidSchema {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Uuid")
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), "string".into());
        m.insert("format".into(), "uuid".into());
        Schema::from(m)
    }
}

// =============================================================================================
// Shared enums

/// A user's role. Terminals (service point kiosks) authenticate with a device token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 系统管理员
    Admin,
    /// 值班主管
    Supervisor,
    /// 受理员 (district acceptance center operator)
    Operator,
    /// 服务点工作人员 (service point staff)
    Staff,
    /// 服务点终端 (kiosk)
    Terminal,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Admin, Role::Supervisor, Role::Operator, Role::Staff, Role::Terminal];

    /// The wire name (`"admin"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Operator => "operator",
            Role::Staff => "staff",
            Role::Terminal => "terminal",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Role::Admin => "系统管理员",
            Role::Supervisor => "值班主管",
            Role::Operator => "受理员",
            Role::Staff => "服务点工作人员",
            Role::Terminal => "服务点终端",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Queue priority of a ticket (优先办理).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// 普通
    #[default]
    Normal,
    /// 老年人
    Elderly,
    /// 残疾人
    Disabled,
    /// 孕妇
    Pregnant,
}

impl Priority {
    pub fn label_zh(self) -> &'static str {
        match self {
            Priority::Normal => "普通",
            Priority::Elderly => "老年人优先",
            Priority::Disabled => "残疾人优先",
            Priority::Pregnant => "孕妇优先",
        }
    }

    /// Whether the ticket is served before normal tickets.
    pub fn is_priority(self) -> bool {
        self != Priority::Normal
    }
}

/// The resident's rating of a session (好差评, five levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RatingLevel {
    /// 非常满意
    VerySatisfied,
    /// 满意
    Satisfied,
    /// 基本满意
    Basic,
    /// 不满意
    Dissatisfied,
    /// 非常不满意
    VeryDissatisfied,
}

impl RatingLevel {
    pub fn label_zh(self) -> &'static str {
        match self {
            RatingLevel::VerySatisfied => "非常满意",
            RatingLevel::Satisfied => "满意",
            RatingLevel::Basic => "基本满意",
            RatingLevel::Dissatisfied => "不满意",
            RatingLevel::VeryDissatisfied => "非常不满意",
        }
    }

    /// 差评: needs follow-up (整改).
    pub fn is_negative(self) -> bool {
        matches!(self, RatingLevel::Dissatisfied | RatingLevel::VeryDissatisfied)
    }

    /// 5 (非常满意) down to 1 (非常不满意).
    pub fn score(self) -> u8 {
        match self {
            RatingLevel::VerySatisfied => 5,
            RatingLevel::Satisfied => 4,
            RatingLevel::Basic => 3,
            RatingLevel::Dissatisfied => 2,
            RatingLevel::VeryDissatisfied => 1,
        }
    }
}

/// How the operator concluded a case (办理结果), recorded at wrap-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 办结
    Completed,
    /// 已受理待审批
    AcceptedPendingApproval,
    /// 需补材料
    NeedsMaterials,
    /// 转线下办理
    ReferredOffline,
    /// 不予受理
    Rejected,
}

impl Outcome {
    pub fn label_zh(self) -> &'static str {
        match self {
            Outcome::Completed => "办结",
            Outcome::AcceptedPendingApproval => "已受理待审批",
            Outcome::NeedsMaterials => "需补材料",
            Outcome::ReferredOffline => "转线下办理",
            Outcome::Rejected => "不予受理",
        }
    }
}

/// An operator's presence as shown to the operator and on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OperatorStateView {
    /// 离线: not connected.
    Offline,
    /// 空闲: connected and accepting calls.
    Available,
    /// 振铃: a ticket is being offered.
    Ringing,
    /// 通话中
    InCall,
    /// 整理: after a call, until `wrap_up`.
    WrapUp,
    /// 暂离: connected but not accepting calls.
    Away,
}

/// The side of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The service point kiosk (resident side).
    Terminal,
    /// The acceptance center operator.
    Operator,
}

/// How a supervisor takes part in a live call (监听 / 耳语 / 插话). What each mode lets be heard
/// ([`SuperviseMode::operator_hears`], [`SuperviseMode::resident_hears`]) is what the
/// supervisor's client sends and what the terminal and the operator's console play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SuperviseMode {
    /// 监听: sees and hears both sides; nobody sees or hears the supervisor.
    Monitor,
    /// 耳语: as `monitor`, and the operator (only) hears the supervisor.
    Whisper,
    /// 插话: everyone in the call hears the supervisor.
    Barge,
}

impl SuperviseMode {
    pub const ALL: [SuperviseMode; 3] =
        [SuperviseMode::Monitor, SuperviseMode::Whisper, SuperviseMode::Barge];

    pub fn as_str(self) -> &'static str {
        match self {
            SuperviseMode::Monitor => "monitor",
            SuperviseMode::Whisper => "whisper",
            SuperviseMode::Barge => "barge",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            SuperviseMode::Monitor => "监听",
            SuperviseMode::Whisper => "耳语",
            SuperviseMode::Barge => "插话",
        }
    }

    /// Whether the operator hears the supervisor in this mode.
    pub fn operator_hears(self) -> bool {
        matches!(self, SuperviseMode::Whisper | SuperviseMode::Barge)
    }

    /// Whether the resident (the terminal) hears the supervisor in this mode.
    pub fn resident_hears(self) -> bool {
        self == SuperviseMode::Barge
    }
}

/// A participant's part in a session with more than two parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantRole {
    /// The service point's terminal (the resident's side).
    Terminal,
    /// The operator serving the call.
    Operator,
    /// A supervisor monitoring, whispering or barged in (`mode` says which).
    Supervisor,
    /// Another operator or a specialist invited by the operator (三方通话): seen and heard by all.
    Specialist,
    /// A role this client version does not know (never sent by the server).
    #[serde(other)]
    Unknown,
}

/// One participant of a session, as `participants` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ParticipantView {
    #[schemars(with = "UuidSchema")]
    pub participant_id: Uuid,
    pub role: ParticipantRole,
    pub name: String,
    /// A supervisor's mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SuperviseMode>,
}

/// Machine-readable code of an `error` message. Clients map codes they don't know to `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Frame is not valid JSON, has an unknown `type`, unknown or missing fields, wrong types or
    /// values that fail validation.
    BadMessage,
    /// `hello.v` is not a supported protocol version.
    UnsupportedVersion,
    /// No valid credential yet (send `hello` with a token first), or the token is invalid.
    Unauthenticated,
    /// The caller's role may not send this message, or not for this ticket/session.
    Forbidden,
    /// The ticket, session, item, line or operator does not exist (any more).
    NotFound,
    /// The request conflicts with current state (ticket already taken, not ringing, ...).
    Conflict,
    /// The service point or line is closed, or no operator can serve the item.
    Unavailable,
    /// `take_ticket` outside the point's opening hours (its weekly hours by the working-day
    /// calendar: statutory holidays closed, make-up working days open). The message says when it
    /// opens next. Older clients read it as `unknown` and show the message.
    OutsideHours,
    /// Too many messages; slow down.
    RateLimited,
    /// Frame larger than `MAX_FRAME_BYTES`.
    TooLarge,
    /// Server-side failure; retry later.
    Internal,
    /// A code this client version does not know (never sent by the server).
    #[serde(other)]
    Unknown,
}

/// An estimated wait, as a range in seconds (`min_secs` ≤ `max_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitRange {
    pub min_secs: u32,
    pub max_secs: u32,
}

/// Why the server is closing the connection (sent in `bye` just before the close frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ByeReason {
    /// The account or device was disabled or its token revoked. Do not reconnect.
    Revoked,
    /// The same account/device connected elsewhere. Do not reconnect automatically.
    Replaced,
    /// The client did not read its messages fast enough (outbound queue full). Reconnect and
    /// resume.
    SlowConsumer,
    /// The server is restarting. Reconnect with backoff and resume.
    Shutdown,
    /// The client violated the protocol (repeated bad messages, no `hello`, ...).
    ProtocolError,
    /// The access token expired. Refresh it, then reconnect and resume.
    AuthExpired,
    /// A reason this client version does not know (never sent by the server).
    #[serde(other)]
    Unknown,
}

/// Why a ticket left the queue for good (`ticket_closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketCloseReason {
    /// Served: the session ended normally.
    Completed,
    /// Cancelled by the resident (`cancel_ticket`).
    Cancelled,
    /// The terminal disconnected and did not resume within the resume window.
    Abandoned,
    /// The line or service point closed (end of day) before the ticket was served.
    Expired,
    /// Removed by a supervisor or staff member.
    Removed,
    /// A reason this client version does not know (never sent by the server).
    #[serde(other)]
    Unknown,
}

/// Why an operator's ringing stopped without a session (`ring_cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RingCancelReason {
    /// Not accepted within `expires_in_ms`; the operator is set to `away`.
    Timeout,
    /// The operator declined, or a supervisor withdrew the offer.
    Cancelled,
    /// Another operator picked or accepted the ticket first.
    TakenByOther,
    /// The resident cancelled or the terminal left.
    ResidentLeft,
    /// A reason this client version does not know (never sent by the server).
    #[serde(other)]
    Unknown,
}

/// Why a session ended (`session_ended`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionEndReason {
    /// The operator ended the call (`end_call`).
    OperatorEnded,
    /// The resident cancelled the ticket or left the terminal.
    ResidentLeft,
    /// A peer stayed disconnected past the grace period.
    ConnectionLost,
    /// Sent to the previous operator after a transfer; the ticket lives on.
    Transferred,
    /// Ended by a supervisor.
    SupervisorEnded,
    /// The server is shutting down.
    ServerShutdown,
    /// A reason this client version does not know (never sent by the server).
    #[serde(other)]
    Unknown,
}

// =============================================================================================
// Nested payloads

/// Optional resident details a terminal may attach when taking a ticket (e.g. from the ID card
/// reader). Debug output masks both fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResidentDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<PersonName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number: Option<IdNumber>,
}

/// WebRTC signaling payload, relayed verbatim between the two parties of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Signal {
    /// An SDP offer. `ice_restart` marks an offer created with `iceRestart: true`.
    Offer {
        sdp: Sdp,
        #[serde(default)]
        ice_restart: bool,
    },
    /// An SDP answer.
    Answer { sdp: Sdp },
    /// A trickled ICE candidate (`RTCIceCandidateInit`: `candidate`, `sdpMid`, `sdpMLineIndex`).
    /// An empty `candidate` signals the end of candidates.
    Candidate {
        candidate: IceCandidate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<SdpMid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_m_line_index: Option<u16>,
    },
}

impl Signal {
    /// `"offer"`, `"answer"` or `"candidate"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Signal::Offer { .. } => "offer",
            Signal::Answer { .. } => "answer",
            Signal::Candidate { .. } => "candidate",
        }
    }
}

/// Where an operator sends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransferTarget {
    /// Back into a line's queue (keeping its place at the head of the line).
    Line {
        #[schemars(with = "UuidSchema")]
        line_id: Uuid,
    },
    /// Directly to one operator, who gets `ringing` with a `transfer` context.
    Operator {
        #[schemars(with = "UuidSchema")]
        operator_id: Uuid,
    },
}

/// A ticket as shown to terminals and operators. Personal data is only ever sent masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TicketView {
    #[schemars(with = "UuidSchema")]
    pub ticket_id: Uuid,
    /// Called number shown on screens, e.g. `J-0012`.
    pub number: String,
    #[schemars(with = "UuidSchema")]
    pub item_id: Uuid,
    /// 事项名称
    pub item_name: String,
    #[schemars(with = "UuidSchema")]
    pub line_id: Uuid,
    /// 业务线名称
    pub line_name: String,
    #[schemars(with = "UuidSchema")]
    pub point_id: Uuid,
    /// 服务点名称
    pub point_name: String,
    pub priority: Priority,
    /// e.g. `张**`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_name_masked: Option<String>,
    /// e.g. `1101**********002X`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number_masked: Option<String>,
    /// Seconds since the ticket was taken.
    pub waited_secs: u32,
    /// The committee staff member who helped at the point (display name), if one was signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assisted_by: Option<String>,
}

/// Context shown to an operator who is offered a transferred session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TransferContext {
    /// Display name of the operator who transferred the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_operator: Option<String>,
    /// The transferring operator's note (转办说明).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Notes>,
}

/// A STUN/TURN server for `RTCPeerConnection({iceServers})`. `Debug` hides the credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Short-lived TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Everything a party needs to set up the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionView {
    #[schemars(with = "UuidSchema")]
    pub session_id: Uuid,
    pub ticket: TicketView,
    #[schemars(with = "UuidSchema")]
    pub operator_id: Uuid,
    pub operator_name: String,
    /// Which side of the session the receiver is.
    pub your_part: Party,
    /// Perfect-negotiation role of the receiver: the polite peer rolls back its own offer on
    /// glare. The terminal is polite, the operator impolite.
    pub polite: bool,
    pub ice_servers: Vec<IceServer>,
    /// The resident agreed that this call is recorded: the terminal records it (both sides, one
    /// file, uploaded encrypted; supervisors play it back) and the console shows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recording: bool,
}

/// One line (业务线) on the supervisor board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LineBoard {
    #[schemars(with = "UuidSchema")]
    pub line_id: Uuid,
    pub line_name: String,
    /// Tickets waiting, priority tickets included.
    pub waiting: u32,
    /// Of which priority tickets.
    pub priority_waiting: u32,
    pub longest_wait_secs: u32,
    /// The next tickets in service order (at most 10), which an operator of the line may `pick`.
    /// Numbers, items and priorities only: no personal data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<BoardTicket>,
}

/// A waiting ticket on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BoardTicket {
    #[schemars(with = "UuidSchema")]
    pub ticket_id: Uuid,
    pub number: String,
    pub item_name: String,
    pub priority: Priority,
    /// Seconds waited when the board was sent.
    pub waited_secs: u32,
}

/// One operator on the supervisor board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OperatorBoardEntry {
    #[schemars(with = "UuidSchema")]
    pub operator_id: Uuid,
    pub name: String,
    pub state: OperatorStateView,
    /// The operator's live call, which a supervisor may `supervise`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<UuidSchema>")]
    pub session_id: Option<Uuid>,
}

// =============================================================================================
// Client → server

/// A message from a terminal or console to the server. Unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message of every connection. Carries the token when it was not sent as a
    /// `bearer.<JWT>` subprotocol, and the resume token after a reconnect.
    Hello {
        /// Must be `PROTOCOL_VERSION` (1).
        v: u16,
        /// Access JWT (console) or device JWT (terminal), at most 4096 bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<Token>,
        /// `resume_token` from the previous `welcome`, within `RESUME_WINDOW_SECS`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<Token>,
    },
    /// Heartbeat, every `HEARTBEAT_SECS`; answered with `pong` carrying the same `seq`.
    Ping { seq: u64 },
    /// A fresh token for this connection (same account or terminal, same kind), sent before the
    /// one it was opened with expires: the connection then lasts until the new token's expiry
    /// instead of ending with `bye` `auth_expired`. Answered with `renewed`; a token that is
    /// invalid or not this party's gets an `unauthenticated` error and changes nothing.
    Renew { token: Token },

    // ---- terminal
    /// Take a ticket (取号) for a service item. Idempotent per `request_id`.
    TakeTicket {
        #[schemars(with = "UuidSchema")]
        item_id: Uuid,
        #[serde(default)]
        priority: Priority,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resident: Option<ResidentDetails>,
        /// Client-generated; retrying with the same id returns the same ticket.
        #[schemars(with = "UuidSchema")]
        request_id: Uuid,
        /// The access token of the committee staff member signed in at the kiosk (role `staff`,
        /// this terminal's point), recorded as the ticket's helper.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staff_token: Option<Token>,
        /// The resident's answer, asked at the kiosk before the call, to whether the call may be
        /// recorded (`true`: agreed; `false` or absent: not recorded). Stored with the ticket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recording_consent: Option<bool>,
        /// Check in an appointment (预约签到) found by its code at this terminal
        /// (`POST /api/v1/terminals/me/appointments/check-in`): booked for `item_id` at this
        /// terminal's point today. The ticket is served ahead of walk-ins from the slot start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<UuidSchema>")]
        appointment_id: Option<Uuid>,
    },
    /// Give up a ticket (in the queue, ringing or in a call).
    CancelTicket {
        #[schemars(with = "UuidSchema")]
        ticket_id: Uuid,
    },
    /// Rate a finished session (answer to `rate_request`).
    Rate {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        level: RatingLevel,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<Comment>,
    },

    // ---- operator
    /// Go available (`true`) or away (`false`).
    SetAvailability { available: bool },
    /// Accept the ticket that is ringing.
    Accept {
        #[schemars(with = "UuidSchema")]
        ticket_id: Uuid,
    },
    /// Decline the ticket that is ringing; it is offered to someone else.
    Decline {
        #[schemars(with = "UuidSchema")]
        ticket_id: Uuid,
    },
    /// Pick a specific waiting ticket from a line the operator serves (skipping the order).
    Pick {
        #[schemars(with = "UuidSchema")]
        ticket_id: Uuid,
    },
    /// Put the call on hold (media paused on both sides).
    Hold {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
    },
    /// Take the call off hold.
    Resume {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
    },
    /// Hand the resident over to another line or operator (转办).
    Transfer {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        target: TransferTarget,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<Notes>,
    },
    /// Ask the terminal to scan a document (扫描材料) for the session, optionally for one of the
    /// service item's required-material slots, with a note the resident reads.
    RequestScan {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<UuidSchema>")]
        slot_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<Notes>,
    },
    /// Hang up. The operator then owes a `wrap_up`.
    EndCall {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
    },
    /// Record the outcome (办理结果) after the call; the operator becomes available again.
    WrapUp {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notes: Option<Notes>,
    },

    // ---- both parties of a session
    /// WebRTC signaling for the session, relayed to the other party.
    Signal {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        signal: Signal,
    },

    // ---- sessions with more than two parties
    /// Supervisor: join a live call in `mode`, or change the mode of a call one supervises.
    Supervise {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        mode: SuperviseMode,
    },
    /// Supervisor: leave a call one supervises (the call goes on).
    LeaveSession {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
    },
    /// Signaling to one named participant (`peer`) of the session: every pair of participants
    /// other than the terminal and the operator is its own peer connection.
    PeerSignal {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        #[schemars(with = "UuidSchema")]
        peer: Uuid,
        signal: Signal,
    },
    /// Operator: invite another operator (by account, or any free operator of a line) into the
    /// call as a specialist (三方通话).
    Invite {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        target: TransferTarget,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<Notes>,
    },
    /// The invited operator accepts (`accept: true`) or declines an `invited`.
    AnswerInvite {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        accept: bool,
    },
    /// A specialist in the call takes it over: the call is transferred to them at once (the
    /// operator leaves it as after a transfer; the resident stays with the specialist).
    TakeOver {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
    },

    // ---- operations
    /// Either party of a call reports, once per session, how long the call took to set up on
    /// its side: from receiving `session_started` to the first decoded video frame of the other
    /// party, in ms (at most [`MAX_CALL_SETUP_MS`]). Only recorded as a server metric.
    CallSetup {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        #[serde(deserialize_with = "call_setup_ms")]
        #[schemars(range(max = 600_000))]
        first_frame_ms: u32,
    },
}

/// Longest call setup time a `call_setup` may report (10 minutes, in ms).
pub const MAX_CALL_SETUP_MS: u32 = 600_000;

fn call_setup_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v > MAX_CALL_SETUP_MS {
        return Err(serde::de::Error::custom(format!(
            "first_frame_ms 不得超过 {MAX_CALL_SETUP_MS} (at most {MAX_CALL_SETUP_MS} ms)"
        )));
    }
    Ok(v)
}

impl ClientMsg {
    /// Every `type` value, in declaration order.
    pub const KINDS: &'static [&'static str] = &[
        "hello",
        "ping",
        "renew",
        "take_ticket",
        "cancel_ticket",
        "rate",
        "set_availability",
        "accept",
        "decline",
        "pick",
        "hold",
        "resume",
        "transfer",
        "request_scan",
        "end_call",
        "wrap_up",
        "signal",
        "supervise",
        "leave_session",
        "peer_signal",
        "invite",
        "answer_invite",
        "take_over",
        "call_setup",
    ];

    /// The message's `type`, for logs and metrics without the payload.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMsg::Hello { .. } => "hello",
            ClientMsg::Ping { .. } => "ping",
            ClientMsg::Renew { .. } => "renew",
            ClientMsg::TakeTicket { .. } => "take_ticket",
            ClientMsg::CancelTicket { .. } => "cancel_ticket",
            ClientMsg::Rate { .. } => "rate",
            ClientMsg::SetAvailability { .. } => "set_availability",
            ClientMsg::Accept { .. } => "accept",
            ClientMsg::Decline { .. } => "decline",
            ClientMsg::Pick { .. } => "pick",
            ClientMsg::Hold { .. } => "hold",
            ClientMsg::Resume { .. } => "resume",
            ClientMsg::Transfer { .. } => "transfer",
            ClientMsg::RequestScan { .. } => "request_scan",
            ClientMsg::EndCall { .. } => "end_call",
            ClientMsg::WrapUp { .. } => "wrap_up",
            ClientMsg::Signal { .. } => "signal",
            ClientMsg::Supervise { .. } => "supervise",
            ClientMsg::LeaveSession { .. } => "leave_session",
            ClientMsg::PeerSignal { .. } => "peer_signal",
            ClientMsg::Invite { .. } => "invite",
            ClientMsg::AnswerInvite { .. } => "answer_invite",
            ClientMsg::TakeOver { .. } => "take_over",
            ClientMsg::CallSetup { .. } => "call_setup",
        }
    }

    /// The session a message is about, if any.
    pub fn session_id(&self) -> Option<Uuid> {
        match self {
            ClientMsg::Rate { session_id, .. }
            | ClientMsg::Hold { session_id }
            | ClientMsg::Resume { session_id }
            | ClientMsg::Transfer { session_id, .. }
            | ClientMsg::EndCall { session_id }
            | ClientMsg::WrapUp { session_id, .. }
            | ClientMsg::Signal { session_id, .. }
            | ClientMsg::Supervise { session_id, .. }
            | ClientMsg::LeaveSession { session_id }
            | ClientMsg::PeerSignal { session_id, .. }
            | ClientMsg::Invite { session_id, .. }
            | ClientMsg::AnswerInvite { session_id, .. }
            | ClientMsg::TakeOver { session_id }
            | ClientMsg::CallSetup { session_id, .. } => Some(*session_id),
            _ => None,
        }
    }

    /// Parses one frame from an untrusted client. Checks the size limit and UTF-8 before
    /// parsing, never panics, and returns a [`DecodeError`] safe to log and send back.
    pub fn decode(bytes: &[u8]) -> Result<ClientMsg, DecodeError> {
        decode_frame(bytes, Self::KINDS)
    }

    /// Serialises to a JSON text frame. Infallible for these types.
    pub fn encode(&self) -> String {
        encode_json(self)
    }

    /// Like [`encode`](Self::encode), but refuses a frame the server would reject as too large.
    pub fn encode_bounded(&self) -> Result<String, FrameTooLarge> {
        bounded(self.encode())
    }
}

// =============================================================================================
// Server → client

/// A message from the server to a terminal or console. Unknown fields are ignored (tolerant
/// reader); unknown `type`s fail with [`DecodeError::UnknownType`], which clients should skip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to `hello`: the connection is authenticated.
    Welcome {
        v: u16,
        #[schemars(with = "UuidSchema")]
        connection_id: Uuid,
        role: Role,
        /// Present this in `hello.resume` when reconnecting within `RESUME_WINDOW_SECS`.
        resume_token: Token,
        /// Send `ping` this often.
        heartbeat_secs: u64,
        /// Whether the previous connection's state (ticket, session) was restored.
        resumed: bool,
    },
    /// Answer to `ping`.
    Pong { seq: u64 },
    /// Answer to `renew`: the connection now lasts until `expires_at` (unix seconds).
    Renewed { expires_at: i64 },
    /// A request failed. The connection stays open (unless a `bye` follows).
    Error {
        code: ErrorCode,
        /// Human-readable, Chinese first.
        message: String,
        /// `type` of the message that caused the error, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
    /// The server is about to close the connection.
    Bye { reason: ByeReason },

    // ---- tickets (terminal)
    /// Answer to `take_ticket`.
    TicketIssued {
        ticket: TicketView,
        #[schemars(with = "UuidSchema")]
        request_id: Uuid,
    },
    /// The ticket's place in the queue, or who serves its line, changed (1 = next).
    QueuePosition {
        #[schemars(with = "UuidSchema")]
        ticket_id: Uuid,
        position: u32,
        /// Kept for older terminals: a point estimate that assumes at least one operator. New
        /// clients show `wait` and `serving` instead.
        estimated_wait_secs: u32,
        /// Operators serving the ticket's line now (signed in, available or in a call, with the
        /// line's skill). `0`: nobody is on duty for it (当前无人值守).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serving: Option<u32>,
        /// The wait as a range, from the operators serving the line and their recent handle
        /// times. Absent when there is no basis for one (nobody serving).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait: Option<WaitRange>,
    },
    /// The ticket is finished; no more messages about it follow.
    TicketClosed {
        #[schemars(with = "UuidSchema")]
        ticket_id: Uuid,
        reason: TicketCloseReason,
    },

    // ---- operator
    /// A ticket is offered to this operator; `accept` or `decline` within `expires_in_ms`.
    Ringing {
        ticket: TicketView,
        expires_in_ms: u64,
        /// Present when the ticket is a transferred session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transfer: Option<TransferContext>,
    },
    /// The offer was withdrawn.
    RingCancelled {
        #[schemars(with = "UuidSchema")]
        ticket_id: Uuid,
        reason: RingCancelReason,
    },
    /// The operator's own presence changed.
    OperatorStatus { state: OperatorStateView },

    // ---- session (both parties)
    /// A call starts: sent to the terminal and the operator, each with its own `your_part`
    /// and `polite`.
    SessionStarted { session: SessionView },
    /// Signaling relayed from the other party.
    Signal {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        from: Party,
        signal: Signal,
    },
    SessionHeld {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
    },
    SessionResumed {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
    },
    /// The other party's connection dropped; the session survives for `grace_secs`.
    PeerDisconnected {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        grace_secs: u32,
    },
    /// The other party is back: peers should ICE-restart (the impolite peer sends an offer
    /// with `ice_restart: true`).
    PeerReconnected {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
    },
    /// To the terminal: the operator is handing the resident over; keep the ticket screen.
    Transferring {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<UuidSchema>")]
        target_line: Option<Uuid>,
    },
    /// The call is over; close the peer connection.
    SessionEnded {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        reason: SessionEndReason,
    },
    /// To the terminal: ask the resident to rate the session (answer with `rate`).
    RateRequest {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
    },
    /// Answer to `rate`; also sent to the operator who served the session.
    RatingRecorded {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
    },

    // ---- supervisors and staff
    /// Snapshot of queues and operators (sent on connect and on change, throttled).
    Board { lines: Vec<LineBoard>, operators: Vec<OperatorBoardEntry> },

    // ---- materials and printing (both parties of a session)
    /// A material of the session was stored or reviewed. On `rejected` the terminal asks the
    /// resident to scan again (`material.reject_reason` says why).
    MaterialChanged {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        material: crate::api::MaterialView,
    },
    /// To the terminal: the operator asks for a scan (after `request_scan`, or when a scanned
    /// material was rejected: then `reason` says why). The kiosk shows it with a scan button.
    ScanRequested {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<UuidSchema>")]
        slot_id: Option<Uuid>,
        /// The required material's name (e.g. 居民身份证), when a slot is named.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot_name: Option<String>,
        /// The operator's note or the rejection reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A print job was created, claimed, changed state or was cancelled. A terminal fetches
    /// `pending` jobs it missed with `GET /api/v1/terminals/me/print-jobs?state=pending`.
    PrintJobChanged { job: crate::api::PrintJobView },

    // ---- sessions with more than two parties
    /// To a supervisor: `supervise` was accepted. The supervisor offers a peer connection to each
    /// of the other participants (`peer_signal`), receive-only but for its audio where `mode`
    /// lets someone hear it.
    Supervising {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        ticket: TicketView,
        mode: SuperviseMode,
        ice_servers: Vec<IceServer>,
    },
    /// To every participant: who takes part in the session now (sent when it changes). The
    /// terminal and the operator answer a supervisor's offers; the operator's console shows the
    /// supervisor, the kiosk only one who barged in.
    Participants {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        participants: Vec<ParticipantView>,
    },
    /// Signaling relayed from the participant `peer`.
    PeerSignal {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        #[schemars(with = "UuidSchema")]
        peer: Uuid,
        signal: Signal,
    },
    /// To an operator: `from_operator` invites them into a call as a specialist; answer with
    /// `answer_invite`. The invitation lapses when the call ends.
    Invited {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        ticket: TicketView,
        from_operator: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        ice_servers: Vec<IceServer>,
    },
    /// To the inviting operator: the invited operator declined (or could not be reached).
    InviteDeclined {
        #[schemars(with = "UuidSchema")]
        session_id: Uuid,
        #[schemars(with = "UuidSchema")]
        operator_id: Uuid,
    },

    // ---- supervisors and admins
    /// A terminal alarm opened (`cleared_at` null) or cleared: `offline` after the threshold
    /// without a heartbeat, `printer_fault` and `disk_space` from the last heartbeat. The full
    /// list is at
    /// `GET /api/v1/terminal-alarms`.
    TerminalAlarm { alarm: crate::api::TerminalAlarmView },
}

impl ServerMsg {
    /// Every `type` value, in declaration order.
    pub const KINDS: &'static [&'static str] = &[
        "welcome",
        "pong",
        "renewed",
        "error",
        "bye",
        "ticket_issued",
        "queue_position",
        "ticket_closed",
        "ringing",
        "ring_cancelled",
        "operator_status",
        "session_started",
        "signal",
        "session_held",
        "session_resumed",
        "peer_disconnected",
        "peer_reconnected",
        "transferring",
        "session_ended",
        "rate_request",
        "rating_recorded",
        "board",
        "material_changed",
        "scan_requested",
        "print_job_changed",
        "supervising",
        "participants",
        "peer_signal",
        "invited",
        "invite_declined",
        "terminal_alarm",
    ];

    /// The message's `type`, for logs and metrics without the payload.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMsg::Welcome { .. } => "welcome",
            ServerMsg::Pong { .. } => "pong",
            ServerMsg::Renewed { .. } => "renewed",
            ServerMsg::Error { .. } => "error",
            ServerMsg::Bye { .. } => "bye",
            ServerMsg::TicketIssued { .. } => "ticket_issued",
            ServerMsg::QueuePosition { .. } => "queue_position",
            ServerMsg::TicketClosed { .. } => "ticket_closed",
            ServerMsg::Ringing { .. } => "ringing",
            ServerMsg::RingCancelled { .. } => "ring_cancelled",
            ServerMsg::OperatorStatus { .. } => "operator_status",
            ServerMsg::SessionStarted { .. } => "session_started",
            ServerMsg::Signal { .. } => "signal",
            ServerMsg::SessionHeld { .. } => "session_held",
            ServerMsg::SessionResumed { .. } => "session_resumed",
            ServerMsg::PeerDisconnected { .. } => "peer_disconnected",
            ServerMsg::PeerReconnected { .. } => "peer_reconnected",
            ServerMsg::Transferring { .. } => "transferring",
            ServerMsg::SessionEnded { .. } => "session_ended",
            ServerMsg::RateRequest { .. } => "rate_request",
            ServerMsg::RatingRecorded { .. } => "rating_recorded",
            ServerMsg::Board { .. } => "board",
            ServerMsg::MaterialChanged { .. } => "material_changed",
            ServerMsg::ScanRequested { .. } => "scan_requested",
            ServerMsg::PrintJobChanged { .. } => "print_job_changed",
            ServerMsg::Supervising { .. } => "supervising",
            ServerMsg::Participants { .. } => "participants",
            ServerMsg::PeerSignal { .. } => "peer_signal",
            ServerMsg::Invited { .. } => "invited",
            ServerMsg::InviteDeclined { .. } => "invite_declined",
            ServerMsg::TerminalAlarm { .. } => "terminal_alarm",
        }
    }

    /// An `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>, request: Option<&str>) -> ServerMsg {
        ServerMsg::Error { code, message: message.into(), request: request.map(str::to_owned) }
    }

    /// The `error` message answering a frame that failed to decode.
    pub fn from_decode_error(e: &DecodeError) -> ServerMsg {
        ServerMsg::Error { code: e.code(), message: e.to_string(), request: e.msg_type().map(str::to_owned) }
    }

    /// Parses one frame from the server. Same guarantees as [`ClientMsg::decode`]; a client
    /// should ignore [`DecodeError::UnknownType`] (a newer server's message).
    pub fn decode(bytes: &[u8]) -> Result<ServerMsg, DecodeError> {
        decode_frame(bytes, Self::KINDS)
    }

    /// Serialises to a JSON text frame. Infallible for these types.
    pub fn encode(&self) -> String {
        encode_json(self)
    }

    /// Like [`encode`](Self::encode), but refuses a frame the client would reject as too large
    /// (e.g. a `board` with thousands of entries). The server should check this.
    pub fn encode_bounded(&self) -> Result<String, FrameTooLarge> {
        bounded(self.encode())
    }
}

// =============================================================================================
// Decoding and encoding

/// Why a frame could not be decoded. Messages are Chinese first; no string values from the
/// frame are included (they are redacted), so the error is safe to log and to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("消息过大 (frame too large: {len} bytes, limit {max})")]
    TooLarge { len: usize, max: usize },
    #[error("消息不是有效的 UTF-8 文本 (frame is not valid UTF-8)")]
    NotUtf8,
    #[error("消息不是有效的 JSON (malformed JSON: {detail})")]
    Syntax { detail: String },
    #[error("未知的消息类型 (unknown message type `{msg_type}`)")]
    UnknownType { msg_type: String },
    #[error("消息内容无效 (invalid message: {detail})")]
    Invalid {
        /// The frame's `type`, when it had a string one.
        msg_type: Option<String>,
        detail: String,
    },
}

impl DecodeError {
    /// The [`ErrorCode`] to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::BadMessage,
        }
    }

    /// The frame's `type`, when known (for `error.request` and logs).
    pub fn msg_type(&self) -> Option<&str> {
        match self {
            DecodeError::UnknownType { msg_type } => Some(msg_type),
            DecodeError::Invalid { msg_type, .. } => msg_type.as_deref(),
            _ => None,
        }
    }
}

/// An encoded message exceeds [`MAX_FRAME_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("消息过大 (encoded frame too large: {len} bytes, limit {max})")]
pub struct FrameTooLarge {
    pub len: usize,
    pub max: usize,
}

const MAX_TYPE_CHARS: usize = 64;
const MAX_DETAIL_CHARS: usize = 300;

fn decode_frame<T: DeserializeOwned>(bytes: &[u8], kinds: &[&str]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: MAX_FRAME_BYTES });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?;
    // serde_json limits nesting to 128 levels, so hostile nesting fails cleanly.
    serde_json::from_str::<T>(text).map_err(|e| classify(text, &e, kinds))
}

fn classify(text: &str, e: &serde_json::Error, kinds: &[&str]) -> DecodeError {
    let detail = truncate(&redact_strings(&e.to_string()), MAX_DETAIL_CHARS);
    if e.is_syntax() || e.is_eof() || e.is_io() {
        return DecodeError::Syntax { detail };
    }
    match probe_type(text) {
        Some(t) if !kinds.contains(&t.as_str()) => {
            DecodeError::UnknownType { msg_type: truncate(&t, MAX_TYPE_CHARS) }
        }
        t => DecodeError::Invalid { msg_type: t, detail },
    }
}

/// The top-level `type` string of a JSON object, if it has one.
fn probe_type(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        ty: Option<serde_json::Value>,
    }
    match serde_json::from_str::<Probe>(text) {
        Ok(Probe { ty: Some(serde_json::Value::String(s)) }) => Some(truncate(&s, MAX_TYPE_CHARS)),
        _ => None,
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Replaces client-supplied values in serde's messages with `…`: `string "..."` (e.g. `invalid
/// type: string "11010519491231002X", expected u64`), `unknown variant `...``, `integer `...``
/// and `floating point `...``. Field names and the expected alternatives are kept.
fn redact_strings(msg: &str) -> String {
    const NEEDLES: [(&str, u8); 4] =
        [("string \"", b'"'), ("variant `", b'`'), ("integer `", b'`'), ("floating point `", b'`')];
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    loop {
        let next = NEEDLES
            .iter()
            .filter_map(|(needle, close)| rest.find(needle).map(|i| (i + needle.len(), *close)))
            .min_by_key(|(start, _)| *start);
        let Some((start, close)) = next else { break };
        // The needles are ASCII, so `start` is a char boundary.
        out.push_str(&rest[..start]);
        out.push('…');
        out.push(close as char);
        // Find the closing quote; serde writes strings with Debug escaping (`\"`).
        let bytes = rest.as_bytes();
        let mut j = start;
        let mut end = None;
        while j < bytes.len() {
            match bytes[j] {
                b'\\' if close == b'"' => j += 2,
                b if b == close => {
                    end = Some(j);
                    break;
                }
                _ => j += 1,
            }
        }
        // `end` indexes an ASCII byte, so `end + 1` is a char boundary.
        rest = match end {
            Some(e) => &rest[e + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

fn encode_json<T: Serialize>(msg: &T) -> String {
    // Cannot fail: every map key is a string and every Serialize impl here is infallible.
    serde_json::to_string(msg).expect("protocol messages always serialise")
}

fn bounded(s: String) -> Result<String, FrameTooLarge> {
    if s.len() > MAX_FRAME_BYTES { Err(FrameTooLarge { len: s.len(), max: MAX_FRAME_BYTES }) } else { Ok(s) }
}

/// Both directions, for the schema document.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)]
enum BangbanMessage {
    Client(ClientMsg),
    Server(ServerMsg),
}

/// One JSON Schema (draft 2020-12) document describing both directions, for serving at
/// `/api/protocol.schema.json`. `$defs.ClientMsg` and `$defs.ServerMsg` are the two roots.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(BangbanMessage);
    schema.insert("title".into(), format!("Bangban WebSocket protocol v{PROTOCOL_VERSION}").into());
    schema.insert(
        "description".into(),
        format!(
            "One JSON object per text frame (at most {MAX_FRAME_BYTES} bytes) on /ws with subprotocol \
             {SUBPROTOCOL}. Client messages (ClientMsg) reject unknown fields; clients must ignore \
             unknown fields and unknown message types in ServerMsg."
        )
        .into(),
    );
    schema.insert("x-protocol-version".into(), PROTOCOL_VERSION.into());
    schema.insert("x-subprotocol".into(), SUBPROTOCOL.into());
    schema.insert("x-max-frame-bytes".into(), MAX_FRAME_BYTES.into());
    schema.insert("x-heartbeat-secs".into(), HEARTBEAT_SECS.into());
    schema.to_value()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn redacts_string_values() {
        assert_eq!(
            redact_strings(r#"invalid type: string "11010519491231002X", expected u64 at line 1 column 5"#),
            r#"invalid type: string "…", expected u64 at line 1 column 5"#
        );
        assert_eq!(redact_strings(r#"string "a\"b" and string "c""#), r#"string "…" and string "…""#);
        assert_eq!(redact_strings(r#"string "unterminated\"#), r#"string "…""#);
        assert_eq!(redact_strings("no strings"), "no strings");
        assert_eq!(
            redact_strings("unknown variant `13812345678`, expected one of `normal`, `elderly`"),
            "unknown variant `…`, expected one of `normal`, `elderly`"
        );
        assert_eq!(
            redact_strings("invalid type: integer `13812345678`, expected a string"),
            "invalid type: integer `…`, expected a string"
        );
        assert_eq!(
            redact_strings("invalid type: floating point `1.5`, expected u64"),
            "invalid type: floating point `…`, expected u64"
        );
        assert_eq!(redact_strings("unknown field `x`, expected `seq`"), "unknown field `x`, expected `seq`");
        assert_eq!(redact_strings("variant `\u{202e}办"), "variant `…`");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("办事大厅", 2), "办事…");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
