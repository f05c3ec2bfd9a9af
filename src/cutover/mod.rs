//! Cutover: an organization copied by `nestgate migrate` is switched to its target while its
//! integrations keep running, with the ids they know.
//!
//! - [`state`]: where each organization stands, in storage (`org_routes` and friends); every
//!   transition is one conditional statement.
//! - [`serving`]: what this instance serves each organization from, read every second; writes
//!   refused while frozen; freezes acknowledged once this instance's writes have drained.
//! - [`ids`]: after the switch, ids read through the id map both ways.
//! - [`command`]: `nestgate migrate ORG --cutover | --rollback | --status`.

pub mod command;
pub mod ids;
pub mod serving;
pub mod state;
