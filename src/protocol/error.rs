//! Every error a command can answer with, in Redis's exact wording.
//!
//! The prefix (`ERR`, `WRONGTYPE`, `NOAUTH`...) is part of the text: clients
//! parse it.

use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq)]
pub enum CmdError {
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand { name: String, args: String },
    #[error("ERR unknown subcommand '{sub}'. Try {cmd} HELP.")]
    UnknownSubcommand { cmd: String, sub: String },
    /// For commands whose subcommands are parsed by the command itself.
    #[error("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {cmd} HELP.")]
    SubcommandSyntax { cmd: String, sub: String },
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    #[error("ERR syntax error")]
    Syntax,
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(String),
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    #[error("ERR source and destination objects are the same")]
    SameObject,
    #[error("ERR offset is out of range")]
    OffsetOutOfRange,
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    #[error("ERR invalid cursor")]
    InvalidCursor,
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    #[error(
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    )]
    AuthNotConfigured,
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    #[error("ERR max number of clients reached")]
    MaxClients,
    #[error("ERR No such client")]
    NoSuchClient,
    #[error("ERR Unsupported option {0}")]
    UnsupportedOption(String),
    #[error("ERR NX and XX, GT or LT options at the same time are not compatible")]
    NxWithOthers,
    #[error("ERR GT and LT options at the same time are not compatible")]
    GtAndLt,
    #[error("ERR Unknown option or number of arguments for CONFIG SET - '{0}'")]
    ConfigUnknown(String),
    #[error("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")]
    ConfigSet { name: String, reason: String },
    /// Any other `ERR ...` text; the string excludes the prefix.
    #[error("ERR {0}")]
    Err(String),
    #[error(
        "ERR {cmd} command not allowed. If the {directive} option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server."
    )]
    ProtectedCommand { cmd: String, directive: &'static str },
    #[error("LOADING Redis is loading the dataset in memory")]
    Loading,
    /// A command that panicked; the server log has the details.
    #[error("ERR internal error while executing '{0}' (the server log has the details)")]
    Internal(&'static str),
    #[error("UNBLOCKED client unblocked via CLIENT UNBLOCK")]
    Unblocked,
    /// A full error line whose prefix is not `ERR` (e.g. `BUSYKEY ...`).
    #[error("{0}")]
    Raw(String),
    /// An error already counted in the error stats where it arose (a
    /// command a script called): the script that ends with it only fails.
    #[error("{0}")]
    Counted(String),
}

impl CmdError {
    pub fn err(text: impl Into<String>) -> CmdError {
        CmdError::Err(text.into())
    }

    /// The arity error names the command in lower case, as Redis does.
    pub fn arity(name: &str) -> CmdError {
        CmdError::WrongArity(name.to_ascii_lowercase())
    }

    /// A container's subcommand with the wrong number of arguments
    /// (`config|get`).
    pub fn sub_arity(cmd: &str, sub: &str) -> CmdError {
        CmdError::WrongArity(format!("{cmd}|{}", sub.to_ascii_lowercase()))
    }

    /// `unknown command` shows the name and up to the first arguments the
    /// way Redis quotes them.
    pub fn unknown_command(name: &[u8], args: &[&[u8]]) -> CmdError {
        let clip = |b: &[u8]| {
            let s = String::from_utf8_lossy(&b[..b.len().min(128)]).into_owned();
            s.replace(['\r', '\n'], " ")
        };
        let args = args.iter().take(128).map(|a| format!("'{}' ", clip(a))).collect();
        CmdError::UnknownCommand { name: clip(name), args }
    }
}

pub type CmdResult = Result<super::reply::Reply, CmdError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording() {
        assert_eq!(
            CmdError::unknown_command(b"foo", &[b"a", b"b"]).to_string(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(CmdError::arity("GET").to_string(), "ERR wrong number of arguments for 'get' command");
        assert_eq!(
            CmdError::Raw("BUSYKEY Target key name already exists.".into()).to_string(),
            "BUSYKEY Target key name already exists."
        );
    }
}
