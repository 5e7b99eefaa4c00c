//! Plain text tables whose columns line up even when cells carry colour codes.

use std::io::{self, Write};

use console::measure_text_width;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[(&str, Align)]) -> Table {
        Table {
            headers: headers.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Write the table indented by two spaces; the last column is never padded.
    pub fn write(&self, w: &mut dyn Write) -> io::Result<()> {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(measure_text_width(cell));
            }
        }
        let header: Vec<String> = self.headers.iter().map(|(h, _)| h.clone()).collect();
        self.line(w, &header, &widths, true)?;
        for row in &self.rows {
            self.line(w, row, &widths, false)?;
        }
        Ok(())
    }

    fn line(
        &self,
        w: &mut dyn Write,
        cells: &[String],
        widths: &[usize],
        bold: bool,
    ) -> io::Result<()> {
        let mut line = String::from(" ");
        let last = self.headers.len().saturating_sub(1);
        for (i, (_, align)) in self.headers.iter().enumerate() {
            let cell = cells.get(i).map(String::as_str).unwrap_or("");
            let pad = widths[i].saturating_sub(measure_text_width(cell));
            line.push(' ');
            match align {
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
                Align::Left => {
                    line.push_str(cell);
                    if i != last {
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
            if i != last {
                line.push(' ');
            }
        }
        let line = line.trim_end().to_string();
        if bold {
            writeln!(w, "{}", console::style(line).bold())
        } else {
            writeln!(w, "{line}")
        }
    }
}
