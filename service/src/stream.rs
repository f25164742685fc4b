//! Stream Video: webhook signatures and events, and the JWT its agent
//! endpoint expects.

pub mod event;
pub mod jwt;
pub mod signature;
