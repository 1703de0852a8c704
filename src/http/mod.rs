//! HTTP: the client requests go through (`agent` builds a `client`, whose
//! `connection`s speak HTTP/1.1 through `wire`), one attempt (`job`, `request`),
//! authentication (`auth`), the address policy (`policy`), and what a log
//! may show of a URL or an error (`redact`). Never calls Postgres from the
//! threads that send.

pub mod agent;
pub mod auth;
pub mod client;
mod connection;
pub mod job;
pub mod policy;
pub mod redact;
pub mod request;
pub mod threads;
pub mod wire;
