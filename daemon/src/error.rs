//! The one error type of the domain and the API: a kind that maps to an HTTP status, a stable
//! machine code, a message safe to show a client, and optional details.
//!
//! Storage failures become 503 (or 507 when the disk is full) with a generic message; their
//! detail is logged once, at ERROR, where they happen, never sent to the client.

use serde_json::Value;

use crate::store::StoreError;

/// What kind of failure, which decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request cannot be read.
    BadRequest,
    /// 401: no, expired or unknown credentials.
    Unauthorized,
    /// 403: authenticated, but the role may not do this.
    Forbidden,
    /// 404: no such thing.
    NotFound,
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 409: conflicts with the current state (transition, stock).
    Conflict,
    /// 413: the body is too large.
    PayloadTooLarge,
    /// 422: readable, but not acceptable.
    Unprocessable,
    /// 429: too many attempts; try later.
    TooManyRequests,
    /// 500: a bug (a handler panicked); nothing about the request is assumed saved.
    Internal,
    /// 503: the store cannot take it now.
    Unavailable,
    /// 507: the disk is full.
    InsufficientStorage,
}

impl ErrorKind {
    /// The HTTP status code.
    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::Unprocessable => 422,
            Self::TooManyRequests => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
            Self::InsufficientStorage => 507,
        }
    }
}

/// A failure to report to a client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AppError {
    /// Decides the status.
    pub kind: ErrorKind,
    /// Stable snake_case code clients can switch on.
    pub code: &'static str,
    /// Human-readable, safe to show, says what to do.
    pub message: String,
    /// Structured extra information (field errors, allowed transitions).
    pub details: Option<Value>,
    /// Seconds to wait, for 429 and 503.
    pub retry_after_secs: Option<u64>,
}

impl AppError {
    /// A new error without details.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }
    }

    /// Adds details.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 422 `validation_failed` on one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            ErrorKind::Unprocessable,
            "validation_failed",
            format!("{field}: {message}"),
        )
        .with_details(serde_json::json!({ "field": field }))
    }

    /// 404 for a named thing.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", format!("no such {what}"))
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorKind::Unauthorized,
            "unauthorized",
            "sign in: send a valid `Authorization: Bearer <token>`",
        )
    }

    /// 403.
    pub fn forbidden(need: &str) -> Self {
        Self::new(
            ErrorKind::Forbidden,
            "forbidden",
            format!("this needs the {need} role"),
        )
    }

    /// 500 for a request whose handler panicked (a bug; logged at ERROR).
    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "internal",
            "the box hit an error handling this request; check whether it took effect before retrying",
        )
    }

    /// 503 while shutting down or when the writer is gone.
    pub fn unavailable() -> Self {
        Self {
            retry_after_secs: Some(1),
            ..Self::new(
                ErrorKind::Unavailable,
                "unavailable",
                "the order store is not available; retry shortly",
            )
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        if matches!(e, StoreError::WriterStopped) {
            // Shutdown: retry shortly (another start), nothing to report.
            Self::unavailable()
        } else if e.is_disk_full() {
            tracing::error!(error = %e, "store: disk full");
            Self::new(
                ErrorKind::InsufficientStorage,
                "disk_full",
                "the box's disk is full; nothing was saved. Tell the manager.",
            )
        } else {
            tracing::error!(error = %e, "store failure");
            Self::unavailable()
        }
    }
}

/// Result of domain work inside a write transaction: an [`AppError`] found while checking, or
/// a failure in the store.
pub type TxResult<T> = crate::store::writer::TxResult<T, AppError>;

impl From<AppError> for crate::store::writer::TxError<AppError> {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

/// The writer's jobs as the domain and the API submit them: they fail with an [`AppError`].
pub trait Commit {
    /// Runs `f` inside the next batch's write transaction and answers after the commit
    /// ([`crate::store::writer::Writer::submit`]).
    fn run<T, F>(&self, f: F) -> impl Future<Output = Result<T, AppError>> + Send
    where
        T: Send + 'static,
        F: for<'a, 'b> FnOnce(&'a mut crate::store::writer::Tx<'b>) -> TxResult<T> + Send + 'static;

    /// Like [`Commit::run`], for work no client waits on: it rides along with the next batch.
    fn run_background<T, F>(&self, f: F) -> impl Future<Output = Result<T, AppError>> + Send
    where
        T: Send + 'static,
        F: for<'a, 'b> FnOnce(&'a mut crate::store::writer::Tx<'b>) -> TxResult<T> + Send + 'static;
}

impl Commit for crate::store::writer::Writer {
    fn run<T, F>(&self, f: F) -> impl Future<Output = Result<T, AppError>> + Send
    where
        T: Send + 'static,
        F: for<'a, 'b> FnOnce(&'a mut crate::store::writer::Tx<'b>) -> TxResult<T> + Send + 'static,
    {
        self.submit(f, false)
    }

    fn run_background<T, F>(&self, f: F) -> impl Future<Output = Result<T, AppError>> + Send
    where
        T: Send + 'static,
        F: for<'a, 'b> FnOnce(&'a mut crate::store::writer::Tx<'b>) -> TxResult<T> + Send + 'static,
    {
        self.submit(f, true)
    }
}
