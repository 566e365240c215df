//! Plain-text tables and number formatting shared by `fit`, `models` and `devices`.
//!
//! No color and no box-drawing: the output reads the same in a pipe, a log file and a terminal
//! with `NO_COLOR` set.

use headroom_core::units::GIB;

/// Column alignment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: pad on the right.
    Left,
    /// Numbers: pad on the left so digits line up.
    Right,
}

/// A table: a header row and data rows, each column padded to its widest cell.
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles and alignments.
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            header: columns
                .iter()
                .map(|(title, _)| (*title).to_owned())
                .collect(),
            align: columns.iter().map(|(_, align)| *align).collect(),
            rows: Vec::new(),
        }
    }

    /// Append a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The table as text, two spaces between columns, a dashed rule under the header.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|col| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|row| row[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        for row in std::iter::once(&self.header)
            .chain(std::iter::once(&rule))
            .chain(&self.rows)
        {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .zip(&self.align)
                .map(|((cell, width), align)| match align {
                    Align::Left => format!("{cell:<width$}"),
                    Align::Right => format!("{cell:>width$}"),
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// Bytes as GiB with two decimals, e.g. `4.58 GiB`.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / GIB as f64)
}

/// A count with thousands separators, e.g. `8,030,261,248`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A parameter count in billions (or millions below one billion), e.g. `8.03B`, `494M`.
pub fn params_short(n: u64) -> String {
    /// 10^9: parameter counts are quoted in decimal billions by every vendor.
    const BILLION: f64 = 1e9;
    /// 10^6.
    const MILLION: f64 = 1e6;
    let n = n as f64;
    if n >= BILLION {
        format!("{:.2}B", n / BILLION)
    } else {
        format!("{:.0}M", n / MILLION)
    }
}

/// Tokens per second with sensible precision, or `n/a` when not finite or not positive.
pub fn tokens_per_s(rate: f64) -> String {
    if !rate.is_finite() || rate <= 0.0 {
        "n/a".to_owned()
    } else if rate >= 1000.0 {
        thousands(rate.round() as u64)
    } else if rate >= 100.0 {
        format!("{rate:.0}")
    } else if rate >= 10.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(8_030_261_248), "8,030,261,248");
    }

    #[test]
    fn table_aligns() {
        let mut table = Table::new(&[("a", Align::Left), ("n", Align::Right)]);
        table.row(vec!["xyz".into(), "1".into()]);
        table.row(vec!["q".into(), "100".into()]);
        assert_eq!(table.render(), "a      n\n---  ---\nxyz    1\nq    100\n");
    }
}
