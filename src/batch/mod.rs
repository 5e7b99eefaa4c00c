//! Phases 2–3: selection, running stories sequentially or in parallel, landing, clean-up.
