//! The end of a list item (is it a task, or several?) and of a file, for [`State`].

use std::rc::Rc;

use super::reuse::Buffers;
use super::text::lazy_checkbox;
use super::{ItemFrame, ParsedStory, State, Task};

impl State<'_> {
    pub(super) fn finish_item(&mut self, item: ItemFrame) {
        if !item.counted {
            self.spare.put_lines(item.lines);
            return;
        }
        if let [(_, text)] = item.lines.as_slice() {
            // One line (most items): no continuation can hide a subtask, so only its own box
            // counts; decided without building the per-line list below.
            if let Some(checked) = item.marker {
                let top_level = !item.nested;
                self.task(
                    text.trim(),
                    checked,
                    item.line,
                    top_level,
                    item.section.as_ref(),
                );
            }
            self.spare.put_lines(item.lines);
            return;
        }
        // Continuation lines that look like checkboxes were indented too far for CommonMark to
        // see a nested list (e.g. 8 spaces under `- [ ] parent`); they are subtasks all the same.
        let mut own = std::mem::take(&mut self.spare.own);
        for (i, (line, text)) in item.lines.iter().enumerate() {
            let lazy = if i == 0 { None } else { lazy_checkbox(text) };
            match (lazy, own.last_mut()) {
                (Some((checked, rest)), _) => {
                    let mut s = self.spare.string();
                    s.push_str(rest);
                    own.push((*line, Some(checked), s));
                }
                (None, Some((_, _, acc))) => {
                    let t = text.trim();
                    if !t.is_empty() {
                        if !acc.is_empty() {
                            acc.push(' ');
                        }
                        acc.push_str(t);
                    }
                }
                (None, None) => {
                    let mut s = self.spare.string();
                    s.push_str(text.trim());
                    own.push((item.line, item.marker, s));
                }
            }
        }
        for (i, (line, marker, text)) in own.iter().enumerate() {
            let Some(checked) = *marker else { continue };
            let top_level = i == 0 && !item.nested;
            let line = if i == 0 { item.line } else { *line };
            self.task(text.trim(), checked, line, top_level, item.section.as_ref());
        }
        for (_, _, s) in own.drain(..) {
            self.spare.put_string(s);
        }
        self.spare.own = own;
        self.spare.put_lines(item.lines);
    }

    /// Count a task (`text` trimmed); keep it when tasks are kept, and its text when it is
    /// unchecked and for a human.
    fn task(
        &mut self,
        text: &str,
        checked: bool,
        line: usize,
        top_level: bool,
        section: Option<&Rc<str>>,
    ) {
        let out = &mut self.out;
        if top_level {
            out.total += 1;
            if checked {
                out.checked += 1;
            } else {
                out.unchecked += 1;
            }
        } else {
            out.subtasks_total += 1;
            if !checked {
                out.subtasks_unchecked += 1;
            }
        }
        if !self.keep_tasks {
            // Only unchecked tasks' texts are kept, so only theirs are searched.
            if !checked && self.is_human(text) {
                self.out.human_validation_tasks.push(text.to_string());
            }
            return;
        }
        let human = self.is_human(text);
        if !checked && human {
            self.out.human_validation_tasks.push(text.to_string());
        }
        self.out.tasks.push(Task {
            text: text.to_string(),
            checked,
            line,
            top_level,
            section: section.map(|s| s.to_string()),
            human,
        });
    }

    /// Case-insensitive match against the (already lowercased) human-validation patterns.
    fn is_human(&self, text: &str) -> bool {
        let needles = &self.prep.human_needles;
        if text.is_ascii() {
            return needles.any_in(text.as_bytes());
        }
        // The needles compare bytes, so they find the (lowercase) patterns in lowercase text.
        needles.any_in(text.to_lowercase().as_bytes())
    }

    /// The story, and the buffers for the next file.
    pub(super) fn finish(mut self) -> (ParsedStory, Buffers) {
        self.flush_prose();
        let State {
            lines,
            mut items,
            mut headings,
            mut metadata,
            mut prose,
            mut spare,
            mut out,
            ..
        } = self;
        // Items end children-first; report tasks in file order (stable for equal lines).
        out.tasks.sort_by_key(|t| t.line);
        dedup_in_order(&mut out.dependency_refs);
        // Every item has ended after a whole parse; whatever is left is emptied all the same.
        for item in items.drain(..) {
            spare.put_lines(item.lines);
        }
        headings.clear();
        metadata.clear();
        prose.clear();
        let bufs = Buffers {
            starts: lines.starts,
            items,
            headings,
            metadata,
            prose,
            spare,
        };
        (out, bufs)
    }
}

/// Drop repeated strings, keeping each first one in place.
fn dedup_in_order(refs: &mut Vec<String>) {
    if refs.len() < 2 {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    let keep: Vec<bool> = refs.iter().map(|r| seen.insert(r.as_str())).collect();
    let mut keep = keep.into_iter();
    refs.retain(|_| keep.next().unwrap_or(true));
}
