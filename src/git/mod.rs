//! Repository work through gix: discovery, worktrees, branches, in-memory merges, rescue refs.
//! Knows nothing about agents or stories.
