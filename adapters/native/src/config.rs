//! Settings of a native backend.

/// `[backends.NAME] kind = "native"`. The records live in the gateway's own storage
/// (`[storage] url`); nothing else is needed.
#[derive(Debug, Clone, Default)]
pub struct NativeConfig {
    /// Whether invoices can be emailed. No mail transport exists yet, so `send` is declared
    /// unsupported and answers `501` with a message that says why.
    pub mail_transport: bool,
}
