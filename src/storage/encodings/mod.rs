//! Compact encodings for small collections.

pub mod intset;
pub mod listpack;

pub use intset::IntSet;
pub use listpack::Listpack;
