//! The session manifest `.claude/worktrees/manifest.json`: schema, exclusive lock, atomic write.
