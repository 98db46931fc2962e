//! Matrix errors on the wire: `{errcode, error}` with the spec's status, and the UIA 401.
//!
//! Every domain error is mapped in exactly one place, [`From<core::Error>`]. Backend failures
//! become 500 `M_UNKNOWN`; their text is logged and never sent to the client.

use std::borrow::Cow;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use myelin_core::{Error, uia::UiaChallenge};
use myelin_store::StoreError;
use serde_json::{Map, Value, json};

#[derive(Debug)]
pub enum ApiError {
    Matrix(MatrixError),
    Uia(Box<UiaChallenge>),
}

#[derive(Debug)]
pub struct MatrixError {
    pub status: StatusCode,
    pub errcode: &'static str,
    pub message: Cow<'static, str>,
    pub extra: Option<Map<String, Value>>,
}

fn matrix(
    status: StatusCode,
    errcode: &'static str,
    message: impl Into<Cow<'static, str>>,
) -> ApiError {
    ApiError::Matrix(MatrixError {
        status,
        errcode,
        message: message.into(),
        extra: None,
    })
}

pub fn unrecognized() -> ApiError {
    matrix(
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
        "Unrecognized request",
    )
}

pub fn method_not_allowed() -> ApiError {
    matrix(
        StatusCode::METHOD_NOT_ALLOWED,
        "M_UNRECOGNIZED",
        "Unrecognized request: method not allowed on this endpoint",
    )
}

pub fn not_json(message: impl Into<Cow<'static, str>>) -> ApiError {
    matrix(StatusCode::BAD_REQUEST, "M_NOT_JSON", message)
}

pub fn bad_json(message: impl Into<Cow<'static, str>>) -> ApiError {
    matrix(StatusCode::BAD_REQUEST, "M_BAD_JSON", message)
}

pub fn invalid_param(message: impl Into<Cow<'static, str>>) -> ApiError {
    matrix(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", message)
}

pub fn missing_param(message: impl Into<Cow<'static, str>>) -> ApiError {
    matrix(StatusCode::BAD_REQUEST, "M_MISSING_PARAM", message)
}

pub fn too_large(limit: usize) -> ApiError {
    matrix(
        StatusCode::PAYLOAD_TOO_LARGE,
        "M_TOO_LARGE",
        format!("Request body is larger than {limit} bytes"),
    )
}

/// The client did not send the whole body within `limits.body_read_timeout_ms`.
pub fn body_timeout() -> ApiError {
    matrix(
        StatusCode::REQUEST_TIMEOUT,
        "M_UNKNOWN",
        "Timed out reading the request body",
    )
}

pub fn internal() -> ApiError {
    matrix(
        StatusCode::INTERNAL_SERVER_ERROR,
        "M_UNKNOWN",
        "Internal server error",
    )
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        use StatusCode as S;
        match err {
            Error::MissingToken => {
                matrix(S::UNAUTHORIZED, "M_MISSING_TOKEN", "Missing access token")
            }
            Error::SoftLoggedOut => ApiError::Matrix(MatrixError {
                status: S::UNAUTHORIZED,
                errcode: "M_UNKNOWN_TOKEN",
                message: "Soft logged out: the token has expired".into(),
                extra: Some(Map::from_iter([(
                    "soft_logout".to_owned(),
                    Value::Bool(true),
                )])),
            }),
            Error::UserLocked => ApiError::Matrix(MatrixError {
                status: S::UNAUTHORIZED,
                errcode: "M_USER_LOCKED",
                message: "This account has been locked".into(),
                extra: Some(Map::from_iter([(
                    "soft_logout".to_owned(),
                    Value::Bool(true),
                )])),
            }),
            Error::UserSuspended => matrix(
                S::FORBIDDEN,
                "M_USER_SUSPENDED",
                "This account has been suspended",
            ),
            Error::UnknownToken => ApiError::Matrix(MatrixError {
                status: S::UNAUTHORIZED,
                errcode: "M_UNKNOWN_TOKEN",
                message: "Unknown or expired access token".into(),
                extra: Some(Map::from_iter([(
                    "soft_logout".to_owned(),
                    Value::Bool(false),
                )])),
            }),
            Error::Forbidden(m) => matrix(S::FORBIDDEN, "M_FORBIDDEN", m),
            Error::GuestAccessForbidden => matrix(
                S::FORBIDDEN,
                "M_GUEST_ACCESS_FORBIDDEN",
                "Guest access is not available on this server",
            ),
            Error::NotFound(m) => matrix(S::NOT_FOUND, "M_NOT_FOUND", m),
            Error::InviteBlocked => matrix(
                S::FORBIDDEN,
                "M_INVITE_BLOCKED",
                "The invited user does not accept invites",
            ),
            Error::KeyTooLarge(m) => matrix(S::BAD_REQUEST, "M_KEY_TOO_LARGE", m),
            Error::ProfileTooLarge(m) => matrix(S::BAD_REQUEST, "M_PROFILE_TOO_LARGE", m),
            Error::WrongRoomKeysVersion(current) => ApiError::Matrix(MatrixError {
                status: S::FORBIDDEN,
                errcode: "M_WRONG_ROOM_KEYS_VERSION",
                message: "Wrong backup version.".into(),
                extra: Some(Map::from_iter([(
                    "current_version".to_owned(),
                    Value::String(current),
                )])),
            }),
            Error::BadJson(m) => matrix(S::BAD_REQUEST, "M_BAD_JSON", m),
            Error::NotJson(m) => matrix(S::BAD_REQUEST, "M_NOT_JSON", m),
            Error::MissingParam(m) => matrix(S::BAD_REQUEST, "M_MISSING_PARAM", m),
            Error::InvalidSignature(m) => matrix(S::BAD_REQUEST, "M_INVALID_SIGNATURE", m),
            Error::InvalidParam(m) => matrix(S::BAD_REQUEST, "M_INVALID_PARAM", m),
            Error::TooLarge(m) => matrix(S::PAYLOAD_TOO_LARGE, "M_TOO_LARGE", m),
            Error::FieldTooLong(m) => matrix(S::BAD_REQUEST, "M_TOO_LARGE", m),
            Error::UserInUse => matrix(S::BAD_REQUEST, "M_USER_IN_USE", "User ID already taken."),
            Error::Unrecognized(m) => matrix(S::NOT_FOUND, "M_UNRECOGNIZED", m),
            Error::UpstreamFailed(m) => matrix(S::BAD_GATEWAY, "M_UNKNOWN", m),
            Error::CannotOverwriteMedia => matrix(
                S::CONFLICT,
                "M_CANNOT_OVERWRITE_MEDIA",
                "Media already uploaded",
            ),
            Error::NotYetUploaded => matrix(
                S::GATEWAY_TIMEOUT,
                "M_NOT_YET_UPLOADED",
                "Content has not yet been uploaded",
            ),
            Error::WeakPassword(m) => matrix(S::BAD_REQUEST, "M_WEAK_PASSWORD", m),
            Error::UserDeactivated => matrix(
                S::FORBIDDEN,
                "M_USER_DEACTIVATED",
                "This account has been deactivated",
            ),
            Error::ThreepidMediumNotSupported(m) => {
                matrix(S::BAD_REQUEST, "M_THREEPID_MEDIUM_NOT_SUPPORTED", m)
            }
            Error::ThreepidNotFound => matrix(
                S::BAD_REQUEST,
                "M_THREEPID_NOT_FOUND",
                "No account is associated with this third-party identifier",
            ),
            Error::InvalidUsername(m) => matrix(S::BAD_REQUEST, "M_INVALID_USERNAME", m),
            Error::Exclusive(m) => matrix(S::BAD_REQUEST, "M_EXCLUSIVE", m),
            Error::AppserviceLoginUnsupported => matrix(
                S::BAD_REQUEST,
                "M_APPSERVICE_LOGIN_UNSUPPORTED",
                "This application service manages its devices itself (MSC4190): register with \
                 inhibit_login and create devices with PUT /devices/{deviceId}",
            ),
            Error::UnknownDevice => matrix(
                S::BAD_REQUEST,
                "M_UNKNOWN_DEVICE",
                "The user has no device with this ID",
            ),
            Error::UnsupportedRoomVersion(m) => {
                matrix(S::BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION", m)
            }
            Error::RoomInUse => matrix(
                S::BAD_REQUEST,
                "M_ROOM_IN_USE",
                "The room alias is already taken",
            ),
            Error::DuplicateAnnotation => matrix(
                S::BAD_REQUEST,
                "M_DUPLICATE_ANNOTATION",
                "You already annotated this event with this key",
            ),
            Error::DeviceIdInUse => {
                matrix(S::BAD_REQUEST, "M_FORBIDDEN", "The device ID is in use")
            }
            Error::RoomBlocked => matrix(
                S::FORBIDDEN,
                "M_UNKNOWN",
                "This room has been blocked on this server",
            ),
            Error::AliasInUse => matrix(
                S::CONFLICT,
                "M_UNKNOWN",
                "A room alias with that name already exists",
            ),
            Error::InvalidRoomState(m) => matrix(S::BAD_REQUEST, "M_INVALID_ROOM_STATE", m),
            Error::BadAlias(m) => matrix(S::BAD_REQUEST, "M_BAD_ALIAS", m),
            Error::LimitExceeded { retry_after_ms } => ApiError::Matrix(MatrixError {
                status: S::TOO_MANY_REQUESTS,
                errcode: "M_LIMIT_EXCEEDED",
                message: "Too many requests".into(),
                extra: Some(Map::from_iter([(
                    "retry_after_ms".to_owned(),
                    Value::from(retry_after_ms),
                )])),
            }),
            Error::ServerControlledType(m) => matrix(S::METHOD_NOT_ALLOWED, "M_BAD_JSON", m),
            Error::Unknown(m) => matrix(S::BAD_REQUEST, "M_UNKNOWN", m),
            Error::Uia(challenge) => ApiError::Uia(challenge),
            Error::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                internal()
            }
            // Input the database refused, despite core's checks: still the request's fault.
            Error::Store(StoreError::Invalid(m)) => {
                tracing::warn!(error = %m, "storage refused the request's input");
                matrix(
                    S::BAD_REQUEST,
                    "M_INVALID_PARAM",
                    "The request contains a value that cannot be stored",
                )
            }
            Error::Store(err) => {
                tracing::error!(error = %err, "storage error");
                internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Matrix(err) => {
                let mut body = err.extra.unwrap_or_default();
                body.insert("errcode".into(), Value::from(err.errcode));
                body.insert("error".into(), Value::from(err.message.into_owned()));
                let retry = body.get("retry_after_ms").and_then(Value::as_u64);
                let mut response = (err.status, Json(Value::Object(body))).into_response();
                if let Some(ms) = retry
                    && let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).to_string())
                {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
                response
            }
            ApiError::Uia(challenge) => {
                let mut body = match serde_json::to_value(&*challenge) {
                    Ok(Value::Object(map)) => map,
                    _ => return internal().into_response(),
                };
                if challenge.completed.is_empty() && challenge.error.is_none() {
                    body.remove("completed");
                }
                if let Some((errcode, message)) = &challenge.error {
                    body.insert("errcode".into(), json!(errcode));
                    body.insert("error".into(), json!(message));
                }
                (StatusCode::UNAUTHORIZED, Json(Value::Object(body))).into_response()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
