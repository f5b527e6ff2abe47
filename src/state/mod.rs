//! tandem's state tables (DESIGN.md §4) on both databases: their DDL
//! (`ddl`) and every read and write of them.
//!
//! Both databases hold a `tandem` schema/database (configurable with
//! `state_schema`). The checkpoint of a direction lives in its destination
//! and is written in the same transaction as the rows it covers, so it
//! moves only with a destination commit.

pub mod ddl;
