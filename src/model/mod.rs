//! The normalized change model: values, rows, changes and typed positions.

pub mod change;
pub mod position;
pub mod value;

pub use change::{Change, Op, Origin, Row, SourceEvent, TxnMeta};
pub use position::{BinlogPos, Lsn, MariaGtid, SourcePos};
pub use value::Value;
