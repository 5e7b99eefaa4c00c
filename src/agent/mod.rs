//! The coding-agent CLI: presets, the prompt, running it as a child process, reading its result.
//! Knows nothing about git refs.
