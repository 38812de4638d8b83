//! Compact encodings for small collections.

pub mod listpack;

pub use listpack::Listpack;
