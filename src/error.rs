//! One error type for the whole extension, each variant mapped to a SQLSTATE so
//! that a DBA (or the LMS admin UI) can tell bad input from an outage.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::fmt;

/// Everything that can go wrong in webhook_emitter code paths.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookError {
    /// A user-supplied setting is not acceptable: `field` names the column or
    /// argument, `message` says what is allowed.
    InvalidField {
        field: &'static str,
        message: String,
    },
    /// A referenced object does not exist.
    NotFound { what: &'static str, key: String },
    /// Input nested too deeply or too large to process safely: `field`
    /// names the input, `message` says what the limit is.
    TooComplex {
        field: &'static str,
        message: String,
    },
    /// A body could not be rendered (template or XML mapping).
    Render(String),
    /// An SPI call failed; this is a bug or a damaged installation.
    Internal(String),
}

pub type Result<T> = std::result::Result<T, WebhookError>;

impl WebhookError {
    /// Shorthand for the most common error: a bad value in a named field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        WebhookError::InvalidField {
            field,
            message: message.into(),
        }
    }

    /// Shorthand for input beyond a nesting or size limit (54001).
    pub fn too_complex(field: &'static str, message: impl Into<String>) -> Self {
        WebhookError::TooComplex {
            field,
            message: message.into(),
        }
    }

    /// The SQLSTATE this error is reported with.
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            WebhookError::InvalidField { .. } => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            WebhookError::NotFound { .. } => PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            WebhookError::TooComplex { .. } => PgSqlErrorCode::ERRCODE_STATEMENT_TOO_COMPLEX,
            WebhookError::Render(_) => PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            WebhookError::Internal(_) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        }
    }

    /// Raise this error as a Postgres ERROR (aborts the current transaction).
    pub fn raise(self) -> ! {
        let code = self.sqlstate();
        ereport!(ERROR, code, self.to_string());
    }
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookError::InvalidField { field, message }
            | WebhookError::TooComplex { field, message } => write!(f, "{field}: {message}"),
            WebhookError::NotFound { what, key } => write!(f, "{what} {key} does not exist"),
            WebhookError::Render(m) => write!(f, "cannot render body: {m}"),
            WebhookError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for WebhookError {}

impl From<pgrx::spi::SpiError> for WebhookError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        WebhookError::Internal(format!("SPI: {e}"))
    }
}

/// Unwrap a result inside a SQL-callable function, raising the error.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.raise(),
        }
    }
}
