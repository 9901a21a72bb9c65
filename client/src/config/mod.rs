//! Options of the client's operations, with defaults taken from `config.client`.

pub mod options;
