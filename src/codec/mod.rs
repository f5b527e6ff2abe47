//! Text forms of values as each database prints them, turned into the
//! canonical `Value` (and nothing else): shared by the sources, the
//! appliers' reads of current rows and the commands. Pure.

pub mod my_text;
pub mod pg_array;
pub mod pg_text;
