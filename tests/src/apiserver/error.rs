//! API errors, rendered as `metav1.Status` objects.
//!
//! API conventions, "Response Status Kind": every error response carries a `Status` with `code`
//! (the HTTP status), `reason` (a machine-readable `StatusReason`), `message` and `details`
//! (`name`, `group`, `kind`, `causes`, `retryAfterSeconds`). The reasons and their HTTP codes follow
//! `k8s.io/apimachinery/pkg/api/errors` (`NewNotFound` → 404 NotFound, `NewAlreadyExists` → 409
//! AlreadyExists, `NewConflict` → 409 Conflict, `NewInvalid` → 422 Invalid with one cause per field
//! error, `NewResourceExpired` → 410 Expired, ...).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

/// One field-level cause of an `Invalid` (422) error (`metav1.StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `field.ErrorType` string, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: String,
    /// Human-readable detail, e.g. `Required value`.
    pub message: String,
    /// JSON path of the field in the `spec.containers[0].name` form the apiserver uses.
    pub field: String,
}

impl Cause {
    pub fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_owned(),
            message: message.into(),
            field: field.to_owned(),
        }
    }
}

/// An error the emulator answers with; rendered as a `Status` body with `code` as HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details.name`, `details.group`, `details.kind` (the resource plural, as the apiserver does).
    pub details: Option<Box<(String, String, String)>>,
    pub causes: Vec<Cause>,
    pub retry_after: Option<u32>,
}

/// The `group.resource` or bare `resource` form the apiserver uses in messages (`pods "x" not
/// found`, `imagebuilds.stratum.dev "x" not found`).
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            causes: Vec::new(),
            retry_after: None,
        }
    }

    fn with_details(mut self, group: &str, resource: &str, name: &str) -> Self {
        self.details = Some(Box::new((
            name.to_owned(),
            group.to_owned(),
            resource.to_owned(),
        )));
        self
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// `NewConflict`: optimistic-concurrency failure on a stale `resourceVersion` or UID
    /// precondition (API conventions, "Concurrency Control and Consistency").
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, resource)
            ),
        )
        .with_details(group, resource, name)
    }

    /// The message client-go's `retry.RetryOnConflict` users see on a stale resourceVersion.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `NewInvalid`: 422 with one cause per field error, message `Kind "name" is invalid: [...]`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{kind}.{group} \"{name}\" is invalid: {joined}"),
        )
        .with_details(group, kind, name);
        if group.is_empty() {
            e.message = format!("{kind} \"{name}\" is invalid: {joined}");
        }
        e.causes = causes;
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// `NewResourceExpired` (410): a watch or list from a compacted resourceVersion.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: {why}",
                qualified(group, resource)
            ),
        )
        .with_details(group, resource, name)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {content_type}"
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `StatusReason` the apiserver uses for a bare HTTP code (for scripted faults).
    pub fn for_code(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        Self::new(code, reason, message)
    }

    /// The `metav1.Status` object for this error.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(d) = &self.details {
            let (name, group, kind) = d.as_ref();
            details.insert("name".into(), json!(name));
            if !group.is_empty() {
                details.insert("group".into(), json!(group));
            }
            details.insert("kind".into(), json!(kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(secs) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        if self.reason.is_empty() {
            status.as_object_mut().map(|o| o.remove("reason"));
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, axum::Json(self.status())).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_matches_apimachinery() {
        let s = ApiError::not_found("stratum.dev", "imagebuilds", "x").status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "imagebuilds.stratum.dev \"x\" not found");
        assert_eq!(s["details"]["kind"], "imagebuilds");
        assert_eq!(s["details"]["group"], "stratum.dev");
    }

    #[test]
    fn invalid_lists_causes() {
        let e = ApiError::invalid(
            "Widget",
            "test.stratum.dev",
            "w",
            vec![Cause::new(
                "FieldValueRequired",
                "spec.size",
                "Required value",
            )],
        );
        let s = e.status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"][0]["field"], "spec.size");
        assert_eq!(
            s["message"],
            "Widget.test.stratum.dev \"w\" is invalid: spec.size: Required value"
        );
    }

    #[test]
    fn retry_after_is_in_details() {
        let mut e = ApiError::for_code(429, "slow down");
        e.retry_after = Some(3);
        assert_eq!(e.status()["details"]["retryAfterSeconds"], 3);
        assert_eq!(e.status()["reason"], "TooManyRequests");
    }
}
