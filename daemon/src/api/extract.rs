//! Request extractors that answer bad input with the API's JSON errors: JSON bodies (size, syntax,
//! types, unknown fields), query strings, path parameters, and staff authentication by role.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::ApiStateRef;
use crate::auth::{Role, Session};
use crate::error::{AppError, ErrorKind};

/// A JSON body, parsed strictly.
pub struct Body<T>(pub T);

/// A request body as bytes (a CSV upload), within the body limit, with the API's errors.
pub struct RawBody(pub Bytes);

async fn read_body(req: Request, state: &ApiStateRef) -> Result<Bytes, AppError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|e: BytesRejection| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AppError::new(
                    ErrorKind::PayloadTooLarge,
                    "body_too_large",
                    format!(
                        "the body is larger than {} bytes",
                        state.settings.limits.max_body_bytes
                    ),
                )
            } else {
                AppError::new(
                    ErrorKind::BadRequest,
                    "unreadable_body",
                    "the body could not be read",
                )
            }
        })
}

impl FromRequest<ApiStateRef> for RawBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &ApiStateRef) -> Result<Self, AppError> {
        // A route that reads raw bodies sets its own limit; name none rather than a wrong one.
        read_body(req, state).await.map(RawBody).map_err(|e| {
            if e.code == "body_too_large" {
                AppError::new(
                    ErrorKind::PayloadTooLarge,
                    "body_too_large",
                    "the body is larger than this request takes (see docs/openapi.json)",
                )
            } else {
                e
            }
        })
    }
}

impl<T: DeserializeOwned> FromRequest<ApiStateRef> for Body<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &ApiStateRef) -> Result<Self, AppError> {
        let bytes = read_body(req, state).await?;
        // Every body is a JSON object; serde would also read a struct from an array.
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        match serde_json::from_slice(&bytes) {
            Ok(_) if !object => Err(AppError::new(
                ErrorKind::Unprocessable,
                "invalid_body",
                "the body must be a JSON object",
            )),
            Ok(v) => Ok(Body(v)),
            // JSON has one number type: `2.0` is the integer 2 (JSON Schema says so too), but
            // serde refuses it for an integer field. Such a body is read again with integral
            // floats turned into integers; the common body never pays for this.
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                let mut value: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| json_error(&e))?;
                if !integral_floats_to_ints(&mut value) {
                    return Err(json_error(&e));
                }
                serde_json::from_value(value)
                    .map(Body)
                    .map_err(|e| json_error(&e))
            }
            Err(e) => Err(json_error(&e)),
        }
    }
}

/// Turns every float with no fractional part (within i64) into an integer; whether any was.
fn integral_floats_to_ints(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            #[allow(clippy::float_cmp)] // exactly integral is the point
            if f.fract() == 0.0
                && (-9.007_199_254_740_991e15..=9.007_199_254_740_991e15).contains(&f)
            {
                *v = Value::from(f as i64);
                true
            } else {
                false
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .fold(false, |any, x| integral_floats_to_ints(x) | any),
        Value::Object(o) => o
            .values_mut()
            .fold(false, |any, x| integral_floats_to_ints(x) | any),
        _ => false,
    }
}

/// Maps a serde_json error: syntax → 400, shape → 422.
pub fn json_error(e: &serde_json::Error) -> AppError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => AppError::new(
            ErrorKind::BadRequest,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        ),
        Category::Data => AppError::new(
            ErrorKind::Unprocessable,
            "invalid_body",
            format!("the body does not have the expected shape: {e}"),
        ),
    }
}

/// A query string, parsed strictly.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<ApiStateRef> for Q<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiStateRef) -> Result<Self, AppError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Q(v))
            .map_err(|e| {
                AppError::new(
                    ErrorKind::BadRequest,
                    "invalid_query",
                    format!("the query string is not valid: {}", e.body_text()),
                )
            })
    }
}

/// A single path parameter.
pub struct PathParam(pub String);

impl FromRequestParts<ApiStateRef> for PathParam {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiStateRef) -> Result<Self, AppError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathParam(v))
            .map_err(|_| AppError::new(ErrorKind::BadRequest, "invalid_path", "bad path parameter"))
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, AppError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(AppError::unauthorized)?;
    Ok(Some(token))
}

fn session(parts: &Parts, state: &ApiStateRef) -> Result<Option<(String, Session)>, AppError> {
    let Some(token) = bearer(parts)? else {
        return Ok(None);
    };
    if token.starts_with(crate::domain::otp::TOKEN_PREFIX) {
        // A customer token is not a staff session.
        return Ok(None);
    }
    let s = state.sessions.check(token, state.now_ms()).ok_or_else(|| {
        AppError::new(
            ErrorKind::Unauthorized,
            "invalid_token",
            "the session is unknown or expired; sign in again",
        )
    })?;
    Ok(Some((token.to_owned(), s)))
}

/// A signed-in staff member or admin.
pub struct Staff(pub Session, pub String);

impl FromRequestParts<ApiStateRef> for Staff {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiStateRef) -> Result<Self, AppError> {
        let (token, s) = session(parts, state)?.ok_or_else(AppError::unauthorized)?;
        Ok(Staff(s, token))
    }
}

/// A signed-in admin.
pub struct Admin(pub Session);

impl FromRequestParts<ApiStateRef> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiStateRef) -> Result<Self, AppError> {
        let (_, s) = session(parts, state)?.ok_or_else(AppError::unauthorized)?;
        if s.role != Role::Admin {
            return Err(AppError::forbidden("admin"));
        }
        Ok(Admin(s))
    }
}

/// A staff session if an `Authorization` header is sent (a bad one is still 401), else none.
pub struct MaybeStaff(pub Option<Session>);

impl FromRequestParts<ApiStateRef> for MaybeStaff {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiStateRef) -> Result<Self, AppError> {
        Ok(MaybeStaff(session(parts, state)?.map(|(_, s)| s)))
    }
}

/// A verified customer, if a customer token is sent (an unknown or expired one is 401).
pub struct MaybeCustomer(pub Option<(String, crate::domain::otp::CustomerToken)>);

impl FromRequestParts<ApiStateRef> for MaybeCustomer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiStateRef) -> Result<Self, AppError> {
        let Some(token) =
            bearer(parts)?.filter(|t| t.starts_with(crate::domain::otp::TOKEN_PREFIX))
        else {
            return Ok(Self(None));
        };
        let rtx = state.store.read()?;
        let ct =
            crate::domain::otp::check_token(&rtx, token, state.now_ms())?.ok_or_else(|| {
                AppError::new(
                    ErrorKind::Unauthorized,
                    "invalid_customer_token",
                    "this verification has expired or was revoked; verify your phone again",
                )
            })?;
        Ok(Self(Some((token.to_owned(), ct))))
    }
}

/// `?page=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// 1-based page.
    #[serde(default)]
    pub page: Option<u32>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u32>,
}

impl PageParams {
    /// Checked (page, limit).
    pub fn resolve(&self, max: u32) -> Result<(u32, u32), AppError> {
        let page = self.page.unwrap_or(1);
        let limit = self.limit.unwrap_or(50.min(max));
        if page == 0 {
            return Err(AppError::invalid("page", "pages start at 1"));
        }
        if limit == 0 || limit > max {
            return Err(AppError::invalid("limit", format!("must be 1 to {max}")));
        }
        Ok((page, limit))
    }
}

/// `{data, pagination:{page, limit, total, total_pages, has_next, has_prev}}`.
#[allow(clippy::needless_pass_by_value)] // moved into the response
pub fn paginated(data: Vec<Value>, page: u32, limit: u32, total: u64) -> Value {
    let total_pages = total.div_ceil(u64::from(limit));
    json!({
        "data": data,
        "pagination": {
            "page": page,
            "limit": limit,
            "total": total,
            "total_pages": total_pages,
            "has_next": u64::from(page) < total_pages,
            "has_prev": page > 1,
        }
    })
}

/// The `Idempotency-Key` header, if sent: 1-128 printable ASCII characters (400 otherwise).
/// Orders and payments both take one.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, AppError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            AppError::new(
                ErrorKind::BadRequest,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-128 printable ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}
