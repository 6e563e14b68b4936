//! REST bodies of cases that outlive the call: the working-day calendar (节假日与调休), points'
//! structured opening hours and work orders (工单).
//!
//! Dates are `YYYY-MM-DD` in China Standard Time (UTC+8); times are unix milliseconds. Request
//! bodies reject unknown fields.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Working-day calendar

/// How a day differs from the ordinary week (Monday–Friday working, weekend off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CalendarDayKind {
    /// A statutory holiday (法定节假日): no work even on a weekday.
    Holiday,
    /// A make-up working day (调休上班): work even on a weekend.
    Workday,
}

/// One day of the calendar that differs from the ordinary week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CalendarDay {
    /// `YYYY-MM-DD`, China Standard Time.
    #[cfg_attr(feature = "openapi", schema(format = Date, pattern = "^(20[0-9]{2}|2100)-"))]
    pub date: String,
    pub kind: CalendarDayKind,
    /// The festival's English name, e.g. `Spring Festival`; up to 64 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 64, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub festival: String,
    /// The festival's Chinese name, e.g. `春节`; up to 32 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 32, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub festival_zh: String,
}

/// A year's holidays and make-up working days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CalendarYear {
    pub year: i32,
    /// Oldest first.
    pub days: Vec<CalendarDay>,
    /// Working days in the year after holidays and make-up days.
    pub working_days: u32,
}

/// Replaces a year's holidays and make-up working days (at most 100 days, all in that year).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutCalendarYearRequest {
    pub days: Vec<CalendarDay>,
}

/// Imports the calendar's CSV format (`date,kind,festival,festival_zh` with a header line):
/// every year that appears in it is replaced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportCalendarRequest {
    /// The CSV text, at most 32 KiB.
    pub csv: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportCalendarReport {
    /// The years replaced, ascending.
    pub years: Vec<i32>,
    /// Days stored.
    pub days: u32,
}

/// The deadline `days` working days after `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkingDeadline {
    pub from: i64,
    pub days: u32,
    /// The last millisecond of the `days`-th working day after `from`'s China-time day.
    pub due_at: i64,
    /// `due_at`'s date, China Standard Time.
    pub due_date: String,
}

// ---------------------------------------------------------------------------------------------
// Opening hours (开放时间)

/// Opening on some weekdays, `HH:MM`–`HH:MM` China time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WeekdayHours {
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub weekdays: Vec<u8>,
    /// `HH:MM`, China Standard Time.
    pub open: String,
    /// `HH:MM`, after `open`.
    pub close: String,
}

/// What statutory holidays and make-up working days do to a point's week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HolidayRule {
    /// Closed on statutory holidays; open on make-up working days (调休) with Monday's hours.
    #[default]
    FollowCalendar,
    /// Closed on statutory holidays; make-up working days are ordinary weekend days.
    ClosedOnHolidays,
    /// The weekly hours apply whatever the calendar says (e.g. a point in a park).
    IgnoreCalendar,
}

/// A special closure (e.g. renovation), dates inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Closure {
    /// `YYYY-MM-DD`.
    pub from: String,
    /// `YYYY-MM-DD`, on or after `from`.
    pub to: String,
    /// Up to 100 characters.
    pub reason: String,
}

/// A point's opening hours as data: at most 14 weekday ranges and 50 closures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpeningHours {
    pub weekly: Vec<WeekdayHours>,
    #[serde(default)]
    pub holiday_rule: HolidayRule,
    #[serde(default)]
    pub closures: Vec<Closure>,
}

/// A point's opening hours: the free text shown to people and the structured schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpeningHoursView {
    pub point_id: Uuid,
    /// The point's free text (开放时间), as shown.
    pub text: String,
    /// `None` until an admin sets it.
    pub schedule: Option<OpeningHours>,
    /// Open at the time of the request (by the schedule; `None` without one).
    pub open_now: Option<bool>,
    /// The next seven days from today (China time), with the hours of each.
    pub week: Vec<OpeningDay>,
}

/// One day's hours at a point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpeningDay {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `HH:MM-HH:MM` ranges; empty when closed.
    pub hours: Vec<String>,
    /// Why it is closed or special (holiday, make-up working day, closure); empty otherwise.
    pub note: String,
}

// ---------------------------------------------------------------------------------------------
// Work orders (工单)

/// Where a work order came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderSource {
    /// From a call's wrap-up, picked by the operator.
    WrapUp,
    /// Opened by committee staff at a service point.
    Point,
    /// 12345 hotline, entered by a supervisor.
    #[serde(rename = "hotline_12345")]
    Hotline12345,
    /// 意见箱, entered by a supervisor.
    SuggestionBox,
    /// 好差评 system, entered by a supervisor.
    GoodBadReview,
}

impl OrderSource {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderSource::WrapUp => "wrap_up",
            OrderSource::Point => "point",
            OrderSource::Hotline12345 => "hotline_12345",
            OrderSource::SuggestionBox => "suggestion_box",
            OrderSource::GoodBadReview => "good_bad_review",
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            OrderSource::WrapUp => "通话转工单",
            OrderSource::Point => "服务点登记",
            OrderSource::Hotline12345 => "12345 热线",
            OrderSource::SuggestionBox => "意见箱",
            OrderSource::GoodBadReview => "好差评",
        }
    }
}

/// The stage of a work order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// 受理
    Accepted,
    /// 分类
    Classified,
    /// 转办
    Transferred,
    /// 办结
    Completed,
    /// 反馈 (closed after the resident's feedback)
    Closed,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Accepted => "accepted",
            OrderState::Classified => "classified",
            OrderState::Transferred => "transferred",
            OrderState::Completed => "completed",
            OrderState::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Accepted, Self::Classified, Self::Transferred, Self::Completed, Self::Closed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            OrderState::Accepted => "受理",
            OrderState::Classified => "分类",
            OrderState::Transferred => "转办",
            OrderState::Completed => "办结",
            OrderState::Closed => "反馈",
        }
    }
}

/// How long an order may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum DeadlineClass {
    /// 当日办结: the end of the day it was accepted.
    SameDay,
    /// 5 working days.
    FiveDays,
    /// 10 working days.
    TenDays,
    /// A set time (unix ms).
    Set { due_at: i64 },
}

impl DeadlineClass {
    /// Working days of a class (0 for same day and set deadlines).
    pub fn working_days(self) -> u32 {
        match self {
            DeadlineClass::FiveDays => 5,
            DeadlineClass::TenDays => 10,
            DeadlineClass::SameDay | DeadlineClass::Set { .. } => 0,
        }
    }
}

/// How far an order has been raised to supervisors (提级响应).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EscalationLevel {
    None,
    /// Due today (临期).
    NearDue,
    /// Past its deadline (超期).
    Overdue,
}

impl EscalationLevel {
    pub fn as_i64(self) -> i64 {
        match self {
            EscalationLevel::None => 0,
            EscalationLevel::NearDue => 1,
            EscalationLevel::Overdue => 2,
        }
    }
    pub fn from_i64(v: i64) -> Self {
        match v {
            1 => EscalationLevel::NearDue,
            2.. => EscalationLevel::Overdue,
            _ => EscalationLevel::None,
        }
    }
}

/// A step on a work order. Text fields: 1–500 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum OrderAction {
    /// 分类: set the category (up to 32 characters).
    Classify {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 32,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        category: String,
    },
    /// 转办: hand to the owner department (up to 64 characters) and optionally an assignee.
    Transfer {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 64,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        department: String,
        #[serde(default)]
        assignee_id: Option<Uuid>,
    },
    /// 退回: back to 受理 for re-classification.
    Return {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 500,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        reason: String,
    },
    /// 挂起: stop the clock.
    Suspend {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 500,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        reason: String,
    },
    /// 恢复: restart the clock.
    Resume,
    /// 需补材料: tell the resident what is still missing.
    RequestMaterials {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 500,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        note: String,
    },
    /// 办结
    Complete {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 500,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        result: String,
    },
    /// 反馈: the resident's feedback; closes the order.
    Feedback {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 500,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        feedback: String,
    },
    /// Reopen after an unsatisfied call-back.
    Reopen {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 500,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        reason: String,
    },
    /// Change the deadline class.
    SetDeadline { deadline: DeadlineClass },
}

impl OrderAction {
    pub fn kind(&self) -> &'static str {
        match self {
            OrderAction::Classify { .. } => "classify",
            OrderAction::Transfer { .. } => "transfer",
            OrderAction::Return { .. } => "return",
            OrderAction::Suspend { .. } => "suspend",
            OrderAction::Resume => "resume",
            OrderAction::RequestMaterials { .. } => "request_materials",
            OrderAction::Complete { .. } => "complete",
            OrderAction::Feedback { .. } => "feedback",
            OrderAction::Reopen { .. } => "reopen",
            OrderAction::SetDeadline { .. } => "set_deadline",
        }
    }
    pub fn label_zh(&self) -> &'static str {
        match self {
            OrderAction::Classify { .. } => "分类",
            OrderAction::Transfer { .. } => "转办",
            OrderAction::Return { .. } => "退回",
            OrderAction::Suspend { .. } => "挂起",
            OrderAction::Resume => "恢复",
            OrderAction::RequestMaterials { .. } => "需补材料",
            OrderAction::Complete { .. } => "办结",
            OrderAction::Feedback { .. } => "反馈",
            OrderAction::Reopen { .. } => "重新办理",
            OrderAction::SetDeadline { .. } => "调整时限",
        }
    }
}

/// Opens a work order. From a wrap-up (operator, supervisor): `session_id` is required and the
/// point, item, line and resident come from the call. At a point (staff): `item_id` is
/// required, the point is the staff member's. By a supervisor: `source` is 12345, 意见箱 or
/// 好差评 and `point_id` and `item_id` are required.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub source: OrderSource,
    #[serde(default)]
    pub session_id: Option<Uuid>,
    #[serde(default)]
    pub point_id: Option<Uuid>,
    #[serde(default)]
    pub item_id: Option<Uuid>,
    /// What the case is about; 1–1000 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 1000,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub summary: String,
    pub deadline: DeadlineClass,
    /// 办件编号 in the processing system; up to 64 characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 64, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub case_number: Option<String>,
    /// The reference in the source system (12345 work order number …); up to 64 characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 64, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub source_ref: Option<String>,
    /// Materials still outstanding: names from the item's checklist (申请材料; any name when the
    /// item has none); at most 30, each up to 64 characters.
    #[serde(default)]
    pub outstanding_materials: Vec<String>,
}

/// One step in an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderEvent {
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    /// `create`, an [`OrderAction`] kind, or `escalate`.
    pub action: String,
    pub action_zh: String,
    pub from_state: Option<OrderState>,
    pub to_state: OrderState,
    pub note: Option<String>,
}

/// A work order as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderView {
    pub id: Uuid,
    /// `GD` + China date + sequence, e.g. `GD20261207-0003`.
    pub number: String,
    pub source: OrderSource,
    pub source_zh: String,
    pub source_ref: Option<String>,
    pub session_id: Option<Uuid>,
    pub point_id: Uuid,
    pub point_name: String,
    pub street: String,
    pub item_id: Uuid,
    pub item_name: String,
    pub line_id: Uuid,
    pub line_name: String,
    /// Masked, e.g. `张*`.
    pub resident_masked: Option<String>,
    /// The resident's phone number, masked (`138****5678`); recorded only with consent.
    pub phone_masked: Option<String>,
    /// When the resident agreed to be contacted, and to what.
    pub consent_at: Option<i64>,
    pub consent_text: Option<String>,
    pub summary: String,
    pub case_number: Option<String>,
    pub category: Option<String>,
    pub department: Option<String>,
    pub assignee_id: Option<Uuid>,
    pub assignee_name: Option<String>,
    pub state: OrderState,
    pub state_zh: String,
    pub suspended: bool,
    pub suspended_reason: Option<String>,
    pub deadline: DeadlineClass,
    /// The deadline now (paused working days included).
    pub due_at: i64,
    /// `due_at` as China time, `YYYY-MM-DD HH:MM`.
    pub due_at_cst: String,
    /// Working days left until the deadline's day (0 on the day and after).
    pub working_days_left: u32,
    pub overdue: bool,
    pub escalation: EscalationLevel,
    pub outstanding_materials: Vec<String>,
    /// The item's checklist (申请材料) with what is still outstanding and what the call's stored
    /// materials already cover; only in the single-order view.
    #[serde(default)]
    pub materials: Vec<OrderMaterial>,
    pub created_by: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub version: i64,
    /// Oldest first; only in the single-order view.
    #[serde(default)]
    pub history: Vec<OrderEvent>,
}

/// One entry of the item's checklist as it stands for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderMaterial {
    /// The checklist entry (`item_materials` slot).
    pub slot_id: Uuid,
    pub name: String,
    pub required: bool,
    /// Named in the order's outstanding materials (待补).
    pub outstanding: bool,
    /// Materials of the order's call stored for this entry and not rejected (已存).
    pub stored: u32,
}

/// A step on an order, with the version the caller saw (409 if it changed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderActionRequest {
    #[serde(default)]
    pub expected_version: Option<i64>,
    pub step: OrderAction,
}

/// Records the resident's phone number after they agreed to be contacted about the case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderContactRequest {
    /// Mainland mobile (11 digits starting with 1) or landline (digits and `-`, 7–16).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 7,
            max_length = 16,
            pattern = "^(1[0-9]{10}|[02-9][0-9]{6,15}|[02-9][0-9]{1,4}-[0-9]{5,10})$"
        )
    )]
    pub phone: String,
    /// The consent wording read to or shown to the resident; 1–500 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 500,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub consent_text: String,
    /// Must be `true`: the resident agreed.
    #[cfg_attr(feature = "openapi", schema(schema_with = must_be_true))]
    pub consent: bool,
}

/// Schema of a flag that must be `true` (the resident's consent).
#[cfg(feature = "openapi")]
fn must_be_true() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Boolean)
        .enum_values(Some([true]))
        .description(Some("Must be `true`: the resident agreed."))
        .build()
}

/// Pattern of the phone numbers the server accepts: a mainland mobile (`1` + 10 digits) or a
/// landline of 7–16 digits, optionally with one dash after the area code, not starting with `1`.
pub const PHONE_PATTERN: &str = "^(1[0-9]{10}|[02-9][0-9]{6,15}|[02-9][0-9]{1,4}-[0-9]{5,10})$";

/// The consent wording the kiosk shows and the resident confirms before staff record their
/// phone number (the console reads the same text to them).
pub const CONSENT_TEXT_ZH: &str = "居民同意帮办通过此电话告知办理进度和回访，办结后按规定期限删除。";

/// Records, at the kiosk, the resident's phone number for the terminal's ticket after they
/// agreed to be contacted about it. Sent with the terminal's device token; the committee staff
/// member signed in at the kiosk (role `staff`, the terminal's point) vouches with their own
/// access token, as with `take_ticket`. The number goes to the work order opened from the
/// ticket's call (now or later).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KioskContactRequest {
    /// Mainland mobile (11 digits starting with 1) or landline (digits, one optional `-`).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 7,
            max_length = 16,
            pattern = "^(1[0-9]{10}|[02-9][0-9]{6,15}|[02-9][0-9]{1,4}-[0-9]{5,10})$"
        )
    )]
    pub phone: String,
    /// The consent wording shown to the resident; 1–500 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 500,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub consent_text: String,
    /// Must be `true`: the resident confirmed on the kiosk screen.
    #[cfg_attr(feature = "openapi", schema(schema_with = must_be_true))]
    pub consent: bool,
    /// The access token of the staff member signed in at the kiosk.
    pub staff_token: crate::validate::Token,
}

impl std::fmt::Debug for KioskContactRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KioskContactRequest").field("consent", &self.consent).finish_non_exhaustive()
    }
}

/// The number as recorded for a ticket (masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KioskContactView {
    pub ticket_id: Uuid,
    pub ticket_number: String,
    /// `138****5678`.
    pub phone_masked: String,
    pub consent_at: i64,
    pub consent_text: String,
    /// The staff member who recorded it (display name).
    pub recorded_by: String,
    /// Work orders of the ticket's calls that received the number.
    pub orders: Vec<Uuid>,
}

/// The full phone number, after an audited reveal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderContactReveal {
    pub phone: String,
    pub consent_at: i64,
    pub consent_text: String,
}

// ---------------------------------------------------------------------------------------------
// Notifications (outbox) and the console's task list

/// The webhook channel's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http://` or `https://`, up to 512 characters.
    #[cfg_attr(feature = "openapi", schema(max_length = 512, pattern = "^\\s*https?://[!-~]+\\s*$"))]
    pub url: String,
    /// The HMAC-SHA256 key, 16–256 characters; stored encrypted, never shown again.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 16, max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")
    )]
    pub secret: String,
    pub enabled: bool,
    /// Attempts before a message is dead-lettered, 1–20.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 20))]
    pub max_attempts: u32,
    /// First retry delay in ms (100–3 600 000), doubling each attempt, capped at an hour.
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 3_600_000))]
    pub retry_base_ms: i64,
}

/// The webhook channel's settings as shown (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookSettingsView {
    pub url: String,
    pub enabled: bool,
    pub max_attempts: u32,
    pub retry_base_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    Pending,
    Delivered,
    /// Dead-lettered after the last attempt failed.
    Dead,
    /// Nobody to send to (no consented phone number).
    Skipped,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationAttempt {
    pub attempt: i64,
    pub at: i64,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// An outbox message and its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationView {
    pub id: Uuid,
    /// `webhook` or `console`.
    pub channel: String,
    /// e.g. `order.accepted`, `order.needs_materials`, `order.completed`, `order.overdue`.
    pub topic: String,
    pub order_id: Option<Uuid>,
    /// `resident`, a role, or a user ID.
    pub recipient: String,
    pub text: String,
    pub status: NotificationStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
    pub history: Vec<NotificationAttempt>,
}

/// A task in the console's task list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskView {
    pub id: Uuid,
    pub topic: String,
    pub order_id: Option<Uuid>,
    pub order_number: Option<String>,
    pub text: String,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Call-backs (回访)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    /// A negative rating's rectification (every one).
    Rectification,
    /// A completed work order (every one).
    Order,
    /// A sampled good rating.
    GoodRating,
    /// A completed home visit (上门办).
    HomeVisit,
}

/// A call-back task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallbackView {
    pub id: Uuid,
    pub kind: CallbackKind,
    pub kind_zh: String,
    pub order_id: Option<Uuid>,
    pub order_number: Option<String>,
    pub session_id: Option<Uuid>,
    pub ticket_number: Option<String>,
    pub item_name: Option<String>,
    pub point_name: Option<String>,
    /// The order's consented phone number, masked (reveal it through the order).
    pub phone_masked: Option<String>,
    pub done: bool,
    pub due_at: i64,
    /// `YYYY-MM-DD HH:MM`, China time.
    pub due_at_cst: String,
    pub overdue: bool,
    pub created_at: i64,
    pub result: Option<String>,
    pub satisfied: Option<bool>,
    pub done_by: Option<Uuid>,
    pub done_at: Option<i64>,
}

/// A call-back's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CallbackResultRequest {
    /// Whether the resident is satisfied; an unsatisfied order call-back reopens the order.
    pub satisfied: bool,
    /// What the resident said; 1–500 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub result: String,
    /// For a rectification: the measures taken (整改措施); up to 1000 characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 1000, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$")
    )]
    pub rectification: Option<String>,
}

/// The share of good ratings that get a call-back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CallbackSettings {
    /// 0–100 (default 10).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub good_share_pct: i64,
}

// ---------------------------------------------------------------------------------------------
// Home visits (上门办): 发现 → 审核 → 帮办 → 评价

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HomeVisitSource {
    /// Found by committee staff (发现).
    Staff,
    /// From the 12345 hotline.
    #[serde(rename = "hotline_12345")]
    Hotline12345,
    /// Referred by another department or a volunteer.
    Referral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HomeVisitState {
    /// 发现: waiting for a supervisor.
    Requested,
    /// 审核 passed: to be scheduled.
    Approved,
    /// 审核 refused, with a reason (final).
    Refused,
    /// 帮办: scheduled and assigned.
    Scheduled,
    /// The visit took place; outcome recorded.
    Done,
    /// 评价: the resident's rating recorded (final).
    Rated,
}

/// Opens a home-visit request. Staff: at their own point (`source` = `staff`). Supervisors:
/// `hotline_12345` or `referral`, with `point_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateHomeVisitRequest {
    pub source: HomeVisitSource,
    #[serde(default)]
    pub point_id: Option<Uuid>,
    #[serde(default)]
    pub item_id: Option<Uuid>,
    /// The resident's situation (e.g. bedridden, lives alone); 1–1000 characters. No ID
    /// numbers.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 1000,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub situation: String,
    /// The resident's address or a landmark, up to 200 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 200,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub address: String,
}

/// A step on a home visit. Texts: 1–500 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum HomeVisitAction {
    /// 审核: approve (supervisor).
    Approve {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 500,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        reason: String,
    },
    /// 审核: refuse (supervisor).
    Refuse {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 500,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        reason: String,
    },
    /// 帮办: schedule (supervisor): when, who (1–10 names, up to 32 characters each), and the
    /// materials to bring (up to 30, 64 characters each).
    Schedule { at: i64, assignees: Vec<String>, materials: Vec<String> },
    /// The visit happened (staff of the point, supervisor).
    Complete {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 500,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        outcome: String,
    },
    /// 评价: the resident's rating (staff of the point, supervisor).
    Rate { level: crate::protocol::RatingLevel, comment: Option<String> },
}

/// A home-visit request as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HomeVisitView {
    pub id: Uuid,
    pub source: HomeVisitSource,
    pub point_id: Uuid,
    pub point_name: String,
    pub item_id: Option<Uuid>,
    pub situation: String,
    pub address: String,
    pub state: HomeVisitState,
    pub state_zh: String,
    pub decision_reason: Option<String>,
    pub decided_by: Option<Uuid>,
    pub scheduled_at: Option<i64>,
    pub assignees: Vec<String>,
    pub materials: Vec<String>,
    pub outcome: Option<String>,
    pub rating: Option<crate::protocol::RatingLevel>,
    pub rating_comment: Option<String>,
    pub created_by: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

/// A step on a home visit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HomeVisitStepRequest {
    pub step: HomeVisitAction,
}

// ---------------------------------------------------------------------------------------------
// The two lists (两张清单)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProblemSource {
    BadRating,
    OverdueOrder,
    /// 巡查
    Inspection,
    /// 抽查
    SpotCheck,
}

/// Records a problem found by an inspection or a spot check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateProblemRequest {
    /// `inspection` or `spot_check`.
    pub source: ProblemSource,
    /// 1–1000 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 1000,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub description: String,
    /// The responsible person or unit, 1–64 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub owner: String,
    /// Days to rectify: 1–7 (default 7); up to 92 for a complex problem, with `complex_reason`.
    #[serde(default)]
    pub days: Option<i64>,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub complex_reason: Option<String>,
}

/// A step on a problem: the measures (整改), then the evidence (销号). 1–1000 characters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProblemStepRequest {
    Rectify {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 1000,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        measures: String,
    },
    Close {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 1000,
                pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
            )
        )]
        evidence: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProblemView {
    pub id: Uuid,
    pub source: ProblemSource,
    pub description: String,
    pub owner: String,
    pub due_at: i64,
    pub complex_reason: Option<String>,
    /// `open` (问题清单), `rectifying` (整改清单) or `closed` (销号).
    pub status: String,
    pub status_zh: String,
    pub measures: Option<String>,
    pub evidence: Option<String>,
    pub overdue: bool,
    pub created_at: i64,
    pub closed_at: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Reports (日报告、周通报、月汇总)

/// The span of a report: a China-time day, the ISO week (Monday to Sunday) or the month that
/// holds the given date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportPeriod {
    /// 日报告
    Daily,
    /// 周通报
    Weekly,
    /// 月汇总
    Monthly,
}

impl ReportPeriod {
    pub fn label_zh(self) -> &'static str {
        match self {
            ReportPeriod::Daily => "日报告",
            ReportPeriod::Weekly => "周通报",
            ReportPeriod::Monthly => "月汇总",
        }
    }
}

/// How a report's rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportGroup {
    /// 按服务点
    Point,
    /// 按街道
    Street,
    /// 按条线
    Line,
}

impl ReportGroup {
    pub fn label_zh(self) -> &'static str {
        match self {
            ReportGroup::Point => "服务点",
            ReportGroup::Street => "街道",
            ReportGroup::Line => "条线",
        }
    }
}

/// The figures of one group (or of all, in `Report::total`). Tickets count by the time they
/// were taken; served, first response, resolution and ratings by the call's start; orders
/// opened by creation, closed by 办结, overdue when their deadline fell in the period and they
/// were not 办结 by then; call-backs by the time they were done.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportRow {
    /// The point's or line's id, or the street's name; empty for the total.
    pub key: String,
    pub name: String,
    /// 取号
    pub tickets: u64,
    /// 已服务 (calls answered)
    pub served: u64,
    /// Tickets answered for the first time within 60 s.
    pub first_response_within_60s: u64,
    /// Of the answered tickets, in percent (one decimal); null when none were answered.
    pub first_response_within_60s_pct: Option<f64>,
    /// Calls wrapped up with an outcome.
    pub wrapped_up: u64,
    /// Of those, 办结 or 已受理待审批.
    pub resolved: u64,
    /// `resolved / wrapped_up` in percent (one decimal); null when none.
    pub resolution_rate_pct: Option<f64>,
    pub ratings: crate::api::RatingCounts,
    /// 非常满意 + 满意 + 基本满意 over all ratings, in percent (one decimal); null when none.
    pub satisfaction_pct: Option<f64>,
    pub orders_opened: u64,
    pub orders_closed: u64,
    pub orders_overdue: u64,
    pub callbacks_done: u64,
}

/// A report over a period, one row per group with any activity, most tickets first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub period: ReportPeriod,
    /// 日报告, 周通报 or 月汇总.
    pub period_zh: String,
    pub group: ReportGroup,
    pub group_zh: String,
    /// First and last day of the period (China time, YYYY-MM-DD, both included).
    pub first_day: String,
    pub last_day: String,
    /// The period as unix ms, `[from, to)`.
    pub from: i64,
    pub to: i64,
    /// e.g. "周通报（2026-11-30 至 2026-12-06）".
    pub title: String,
    pub rows: Vec<ReportRow>,
    pub total: ReportRow,
}

// ---------------------------------------------------------------------------------------------
// Appointments (预约)

/// Where an appointment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AppointmentState {
    /// 已预约
    Booked,
    /// 已签到: a ticket was taken with it at the kiosk.
    CheckedIn,
    /// 已办理: the ticket reached an operator.
    Served,
    /// 爽约: not checked in by the slot end plus the grace period.
    NoShow,
    /// 已取消
    Cancelled,
}

/// A bookable slot of an item's line at a point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppointmentSlot {
    /// `YYYY-MM-DD` (China time).
    pub date: String,
    /// `HH:MM-HH:MM`.
    pub label: String,
    pub start: i64,
    pub end: i64,
    pub capacity: u32,
    /// Places left (0: full).
    pub free: u32,
}

/// Books a slot at the kiosk: device token, and the committee staff member signed in at the
/// kiosk vouches with their access token (as for the kiosk contact).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BookAppointmentRequest {
    pub item_id: Uuid,
    /// The `start` of a slot listed by `appointment-slots`.
    pub slot_start: i64,
    pub name: crate::validate::PersonName,
    /// Mainland mobile (11 digits starting with 1) or landline (digits, one optional `-`).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 7,
            max_length = 16,
            pattern = "^(1[0-9]{10}|[02-9][0-9]{6,15}|[02-9][0-9]{1,4}-[0-9]{5,10})$"
        )
    )]
    pub phone: String,
    /// The consent wording shown to the resident; 1–500 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 500,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub consent_text: String,
    /// Must be `true`: the resident confirmed on the kiosk screen.
    #[cfg_attr(feature = "openapi", schema(schema_with = must_be_true))]
    pub consent: bool,
    /// The access token of the staff member signed in at the kiosk.
    pub staff_token: crate::validate::Token,
}

impl std::fmt::Debug for BookAppointmentRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookAppointmentRequest")
            .field("item_id", &self.item_id)
            .field("slot_start", &self.slot_start)
            .finish_non_exhaustive()
    }
}

/// The consent wording the kiosk shows before an appointment is booked (the kiosk sends exactly
/// this text).
pub const APPOINTMENT_CONSENT_ZH: &str =
    "居民同意帮办保存本人姓名和联系电话，用于本次预约的提醒和签到核对，预约结束后按规定期限删除。";

/// Finds today's appointment at this terminal's point by its check-in code (签到码).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppointmentCheckInRequest {
    /// Six digits.
    #[cfg_attr(feature = "openapi", schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$"))]
    pub code: String,
}

/// An appointment; personal data masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppointmentView {
    pub id: Uuid,
    pub point_id: Uuid,
    pub point_name: String,
    pub item_id: Uuid,
    pub item_name: String,
    pub slot_start: i64,
    pub slot_end: i64,
    /// The slot as the kiosk says it, e.g. `12月7日（周一）09:00-09:30`.
    pub when: String,
    /// `张**`
    pub name_masked: String,
    /// `138****5678`
    pub phone_masked: String,
    pub state: AppointmentState,
    /// The six-digit check-in code (签到码).
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<Uuid>,
    /// The staff member who booked it (display name).
    pub booked_by: String,
    pub created_at: i64,
}
