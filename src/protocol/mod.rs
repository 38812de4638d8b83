//! The client protocol: request parsing, reply encoding, error wording.
//! Depends on nothing else in the server.

pub mod error;
pub mod reply;
pub mod resp;

pub use error::{CmdError, CmdResult};
pub use reply::{Proto, Reply};
