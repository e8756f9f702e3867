//! First-class approvals: what a run asks people (a gate, a decision among
//! options, a selection, a ranking), who may answer, and the answer.

use super::{RunId, Timestamp};
use serde::{Deserialize, Serialize};

/// The shape of the question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// Approve or deny.
    Gate,
    /// One of the options.
    Decision,
    /// `count` of the options.
    Select,
    /// Every option, in an order.
    Rank,
}

/// Who may decide, besides holding `approve` on the workflow. Both empty:
/// anyone who does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Allowed {
    /// Principals by label (`jwt:alice`, `token:release-bot`).
    #[serde(default)]
    pub principals: Vec<String>,
    /// Scopes, any of which qualifies (`approve:deploys`, `admin`).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// An answer: `approved` for a gate, `option` for a decision, `options`
/// for a selection (the chosen ones) or a ranking (all, best first).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
}

/// What a run asks (`approvals.request`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    pub kind: ApprovalKind,
    /// The question, for people.
    pub prompt: String,
    /// The options (decision, select, rank).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// How many a selection takes (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// What the reviewer looks at (any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    #[serde(default)]
    pub allowed: Allowed,
    /// After this long without a decision, `default` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The outcome when the timeout passes (required with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Choice>,
}

/// Most options an approval offers.
pub const MAX_OPTIONS: usize = 100;

impl ApprovalSpec {
    /// Whether the spec can be asked; the first problem otherwise.
    pub fn check(&self) -> Result<(), String> {
        if self.prompt.trim().is_empty() || self.prompt.len() > 4096 {
            return Err("the prompt must be 1 to 4096 bytes".into());
        }
        match self.kind {
            ApprovalKind::Gate => {
                if !self.options.is_empty() {
                    return Err("a gate takes no options".into());
                }
            }
            _ => {
                if self.options.len() < 2 || self.options.len() > MAX_OPTIONS {
                    return Err(format!("give 2 to {MAX_OPTIONS} options"));
                }
                for (i, o) in self.options.iter().enumerate() {
                    if o.is_empty() || o.len() > 200 {
                        return Err("each option is 1 to 200 bytes".into());
                    }
                    if self.options[..i].contains(o) {
                        return Err(format!("option {o:?} is given twice"));
                    }
                }
            }
        }
        if let Some(c) = self.count {
            if self.kind != ApprovalKind::Select {
                return Err("only a selection takes a count".into());
            }
            if c == 0 || c > self.options.len() {
                return Err(format!("count must be 1 to {}", self.options.len()));
            }
        }
        if self
            .payload
            .as_ref()
            .is_some_and(|p| p.to_string().len() > 64 << 10)
        {
            return Err("the payload is over 64 KiB".into());
        }
        match (self.timeout_ms, &self.default) {
            (Some(0), _) => Err("timeout_ms must be over 0".into()),
            (Some(_), None) => Err("a timeout needs a default outcome".into()),
            (None, Some(_)) => Err("a default outcome needs a timeout".into()),
            (_, Some(d)) => self
                .answers(d)
                .map_err(|e| format!("the default outcome: {e}")),
            (None, None) => Ok(()),
        }
    }

    /// Whether `c` answers this question; why not otherwise.
    pub fn answers(&self, c: &Choice) -> Result<(), String> {
        let only =
            |field: &str| format!("a {:?} approval is answered with `{field}` only", self.kind);
        match self.kind {
            ApprovalKind::Gate => match c {
                Choice {
                    approved: Some(_),
                    option: None,
                    options: None,
                } => Ok(()),
                _ => Err(only("approved")),
            },
            ApprovalKind::Decision => match c {
                Choice {
                    approved: None,
                    option: Some(o),
                    options: None,
                } if self.options.contains(o) => Ok(()),
                Choice {
                    approved: None,
                    option: Some(o),
                    options: None,
                } => Err(format!("{o:?} is not one of the options")),
                _ => Err(only("option")),
            },
            ApprovalKind::Select | ApprovalKind::Rank => {
                let Choice {
                    approved: None,
                    option: None,
                    options: Some(chosen),
                } = c
                else {
                    return Err(only("options"));
                };
                for (i, o) in chosen.iter().enumerate() {
                    if !self.options.contains(o) {
                        return Err(format!("{o:?} is not one of the options"));
                    }
                    if chosen[..i].contains(o) {
                        return Err(format!("{o:?} is chosen twice"));
                    }
                }
                let want = match self.kind {
                    ApprovalKind::Select => self.count.unwrap_or(1),
                    _ => self.options.len(),
                };
                if chosen.len() != want {
                    return Err(match self.kind {
                        ApprovalKind::Select => format!("choose exactly {want} options"),
                        _ => format!("rank all {want} options"),
                    });
                }
                Ok(())
            }
        }
    }
}

/// A decision, as the run gets it and the run's events show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    #[serde(flatten)]
    pub choice: Choice,
    /// Who decided (absent when the timeout did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The timeout passed and the default applied.
    #[serde(default)]
    pub timed_out: bool,
}

/// An approval a run asked for, pending or decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    #[schema(value_type = String)]
    pub run_id: RunId,
    pub workflow: String,
    pub name: String,
    /// `pending`, `decided` or `timed_out`.
    pub status: String,
    pub spec: ApprovalSpec,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: Timestamp,
    /// When the timeout passes (ms since the epoch), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ApprovalKind, options: &[&str]) -> ApprovalSpec {
        ApprovalSpec {
            kind,
            prompt: "ship it?".into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            count: None,
            payload: None,
            allowed: Allowed::default(),
            timeout_ms: None,
            default: None,
        }
    }

    fn options(v: &[&str]) -> Choice {
        Choice {
            options: Some(v.iter().map(|s| s.to_string()).collect()),
            ..Choice::default()
        }
    }

    #[test]
    fn each_kind_takes_its_answers_and_refuses_others() {
        let gate = spec(ApprovalKind::Gate, &[]);
        assert!(gate.check().is_ok());
        assert!(
            gate.answers(&Choice {
                approved: Some(false),
                ..Choice::default()
            })
            .is_ok()
        );
        assert!(gate.answers(&options(&["a"])).is_err());
        let decision = spec(ApprovalKind::Decision, &["a", "b", "c"]);
        assert!(
            decision
                .answers(&Choice {
                    option: Some("b".into()),
                    ..Choice::default()
                })
                .is_ok()
        );
        assert!(
            decision
                .answers(&Choice {
                    option: Some("z".into()),
                    ..Choice::default()
                })
                .is_err()
        );
        let mut select = spec(ApprovalKind::Select, &["a", "b", "c"]);
        select.count = Some(2);
        assert!(select.check().is_ok());
        assert!(select.answers(&options(&["c", "a"])).is_ok());
        assert!(select.answers(&options(&["a"])).is_err());
        assert!(select.answers(&options(&["a", "a"])).is_err());
        let rank = spec(ApprovalKind::Rank, &["a", "b", "c"]);
        assert!(rank.answers(&options(&["c", "a", "b"])).is_ok());
        // Not a permutation: one missing, one twice, one foreign.
        assert!(rank.answers(&options(&["c", "a"])).is_err());
        assert!(rank.answers(&options(&["c", "a", "a"])).is_err());
        assert!(rank.answers(&options(&["c", "a", "z"])).is_err());
    }

    #[test]
    fn a_spec_that_cannot_be_answered_is_refused() {
        assert!(spec(ApprovalKind::Decision, &["only"]).check().is_err());
        assert!(spec(ApprovalKind::Decision, &["a", "a"]).check().is_err());
        assert!(spec(ApprovalKind::Gate, &["a", "b"]).check().is_err());
        let mut timed = spec(ApprovalKind::Gate, &[]);
        timed.timeout_ms = Some(1000);
        assert!(timed.check().is_err(), "a timeout without a default");
        timed.default = Some(Choice {
            option: Some("x".into()),
            ..Choice::default()
        });
        assert!(timed.check().is_err(), "a default that does not answer");
        timed.default = Some(Choice {
            approved: Some(false),
            ..Choice::default()
        });
        assert!(timed.check().is_ok());
    }
}
