//! Ownership and conflicts (DESIGN §3): which column changes propagate, how
//! a concurrent change of the same column is decided, and the field-level
//! merge that turns a source change into destination writes given the
//! destination's current row.

pub mod compare;
pub mod decide;
pub mod merge;

pub use decide::{decide, policy_name, Verdict};
pub use merge::{merge_change, ConflictRecord, MergeContext, MergedOp, Outcome};
