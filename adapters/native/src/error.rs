//! The native store's one `parse_error`: storage failures to the contract's error kinds.

use nestgate_contract::AdapterError;

/// What went wrong inside a unit of work.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Another writer got there first (version mismatch, SQLite busy): run the unit again.
    Retry,
    Fail(AdapterError),
}

impl From<AdapterError> for Failure {
    fn from(error: AdapterError) -> Self {
        Failure::Fail(error)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        if is_contention(&error) {
            Failure::Retry
        } else {
            Failure::Fail(parse_error(error))
        }
    }
}

/// Whether the database refused because of a concurrent writer, so that trying again may succeed.
pub(crate) fn is_contention(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    // SQLite: 5 SQLITE_BUSY (and its extended codes such as 517 BUSY_SNAPSHOT), 6 SQLITE_LOCKED.
    // PostgreSQL: 40001 serialization_failure, 40P01 deadlock_detected.
    matches!(code.as_ref(), "5" | "6" | "517" | "261" | "40001" | "40P01")
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Storage errors are the gateway's own fault: logged in full, shown to the client as `internal`
/// without the SQL or the database's wording.
pub(crate) fn parse_error(error: sqlx::Error) -> AdapterError {
    tracing::error!(error = %error, "native store failed");
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
            AdapterError::internal("the store is unavailable").temporary()
        }
        _ => AdapterError::internal("the store failed"),
    }
}
