//! Postgres logical replication source (pgoutput, protocol version 1).
//!
//! Layers, each in its own file: `conn` speaks the replication protocol over a
//! socket (startup, authentication, simple queries, CopyBoth streaming, standby
//! status updates); `pgoutput` decodes one XLogData payload into a message
//! (pure); `crate::codec::pg_text` turns its text values into canonical `Value`s (pure);
//! `normalize` maps relations to pairs and messages to `SourceEvent`s (pure);
//! `stream` drives them: `PostgresSource::run` streams a slot into a bounded
//! channel and confirms to the server only what the applier acknowledged.
//! Nothing past this module knows the wire format.

pub mod conn;
pub mod normalize;
pub mod pgoutput;
pub mod stream;

pub use conn::{ReplicationConn, ReplicationMessage, ReplicationStream};
pub use normalize::Normalizer;
pub use stream::{identify_system, PostgresSource, PostgresSourceOptions, SystemIdentity};
