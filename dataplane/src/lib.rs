//! Modelgate's data plane: the OpenAI-compatible proxy that routes by the routing table
//! the operator pushes.
//!
//! - [`table`]: accepting a routing table: decoding, schema and revision checks,
//!   validation, and which entries this build cannot serve.

#![forbid(unsafe_code)]

pub mod table;
