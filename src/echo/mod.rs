//! Echo suppression and row incarnations (DESIGN §2, §3 convergence): the
//! stage between each direction's source and its batcher.
//!
//! A source delivers tandem's own transactions (recognised by their origin
//! tag) as `Origin::Tandem` transactions; the echo stage of that direction
//! (`stage`) decides what becomes of each: normally nothing (an `Idle` at
//! its position: a row tandem changed never comes back to its origin), and
//! sometimes a forward of tandem's write as that side's outcome.
//!
//! Why forward: the destination D cannot tell, when it applies a change X
//! made on side S, whether D's row with X's key is the row X saw or a new
//! one D created after deleting it; D's own replication stream can, in
//! stream order. So:
//! - every source transaction has a `seen`: the other side's position that
//!   had been applied on its side when it committed, read from tandem's own
//!   transactions in the stream (the position they record: `Applied`);
//! - the echo stage puts a `Barrier` before a transaction with another
//!   `seen`, so a batch never mixes two, and the applier's bookkeeping
//!   (`bookkeeping`) registers each batch `(applied position, seen)` in the
//!   registry (`registry`) just before COMMIT;
//! - D's echo stage remembers the keys D itself deleted, with the position
//!   of the deleting transaction (tombstones); in tandem's own transactions
//!   it keeps the writes to keys it has seen deleted (their rows are
//!   delivered once D deleted anything: `source::OwnRows`), and at the
//!   echo's commit looks its batch up by the applied position the echo
//!   records: writes to keys D deleted after that batch's `seen` — D's
//!   delete and the change were concurrent — are forwarded to S as an
//!   `Origin::Outcome` transaction of D, so S applies the outcome D has; not
//!   those the same echo deleted again: then D's outcome is the key's
//!   absence, which S has;
//! - S's bookkeeping drops a forwarded write to a key S deleted after the
//!   forward's `seen`: that delete reaches D after the write D forwarded, and
//!   removes it there too.
//!
//! A forward that was not needed is not harmless: it carries S's older
//! values as D's, and where S changed the row again meanwhile the policy may
//! pick them at S only — so `seen` must be exact, never earlier than the
//! truth (one `seen` per batch). With one direction running there is no
//! registry: echoes are dropped and nothing else changes. The sources, the
//! batcher and the appliers know none of this.

pub mod bookkeeping;
pub mod registry;
pub mod stage;

pub use bookkeeping::Bookkept;
pub use registry::Incarnations;
pub use stage::{EchoEvents, EchoStage, SeenNow};
