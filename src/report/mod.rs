//! Phase 4: the debrief — tables and JSON from batch results. Writes nothing to the repository.
