//! The vocabulary's stored and wire names in one place: each enum of [`crate::protocol`] that
//! the database or the API also spells has `as_str` (its serde name), `ALL`, `Display` and
//! `FromStr` here, so the protocol, the database mapping and the API agree by construction.

use std::fmt;
use std::str::FromStr;

use crate::protocol::{Outcome, Priority, RatingLevel, Role, SessionEndReason};

/// A name that is not one of the enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind}: {name:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

macro_rules! names {
    ($ty:ident, $kind:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stored and wire name (the serde name).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(UnknownName { kind: $kind, name: s.chars().take(64).collect() }),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(Priority, "priority", {
    Normal => "normal",
    Elderly => "elderly",
    Disabled => "disabled",
    Pregnant => "pregnant",
});

names!(RatingLevel, "rating level", {
    VerySatisfied => "very_satisfied",
    Satisfied => "satisfied",
    Basic => "basic",
    Dissatisfied => "dissatisfied",
    VeryDissatisfied => "very_dissatisfied",
});

names!(Outcome, "outcome", {
    Completed => "completed",
    AcceptedPendingApproval => "accepted_pending_approval",
    NeedsMaterials => "needs_materials",
    ReferredOffline => "referred_offline",
    Rejected => "rejected",
});

names!(SessionEndReason, "session end reason", {
    OperatorEnded => "operator_ended",
    ResidentLeft => "resident_left",
    ConnectionLost => "connection_lost",
    Transferred => "transferred",
    SupervisorEnded => "supervisor_ended",
    ServerShutdown => "server_shutdown",
    Unknown => "unknown",
});

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName { kind: "role", name: s.chars().take(64).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str` is the serde name and `FromStr` its inverse, for every value.
    fn round_trips<T>(all: &[T])
    where
        T: Copy + fmt::Display + FromStr<Err = UnknownName> + PartialEq + fmt::Debug + serde::Serialize,
    {
        for v in all {
            let name = v.to_string();
            assert_eq!(serde_json::to_string(v).expect("json"), format!("\"{name}\""));
            assert_eq!(name.parse::<T>().expect("parses"), *v);
        }
    }

    #[test]
    fn names_are_the_serde_names_and_parse_back() {
        round_trips(Priority::ALL);
        round_trips(RatingLevel::ALL);
        round_trips(Outcome::ALL);
        round_trips(SessionEndReason::ALL);
        round_trips(&Role::ALL);
        assert!("nope".parse::<Priority>().is_err());
        assert!("Admin".parse::<Role>().is_err(), "names are exact");
    }
}
