//! Phase 4 and friends: tables and JSON from results. Writes nothing to the repository.

pub mod debrief;
pub mod html;
pub mod scan;
pub mod table;
pub mod timeline;
