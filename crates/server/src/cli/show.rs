//! Output for people: aligned tables, sizes in binary units, durations and ages in the largest
//! units that matter, and JSON printed as it came for scripts.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Columns padded to their widest cell; numeric columns (named with a leading `>`) aligned right.
pub struct Table {
    head: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head
                .iter()
                .map(|h| h.trim_start_matches('>').to_owned())
                .collect(),
            right: head.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.head.len());
        self.rows.push(cells);
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }

    fn render(&self) -> String {
        let width = |i: usize| {
            std::iter::once(&self.head)
                .chain(&self.rows)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.head.len()).map(width).collect();
        let mut out = String::new();
        for row in std::iter::once(&self.head).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let pad = " ".repeat(widths[i] - cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                if self.right[i] {
                    line.push_str(&pad);
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Key–value lines with the keys padded to the longest.
pub fn fields(indent: &str, pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        println!("{indent}{k:width$}  {v}");
    }
}

/// `--json` prints the answer as the API gave it; otherwise `human` does.
pub fn output(json: bool, answer: &Value, human: impl FnOnce(&Value)) {
    if json {
        self::json(answer);
    } else {
        human(answer);
    }
}

pub fn json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("a JSON value serialises")
    );
}

/// `1 message`, `2 messages`.
pub fn count(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut n = bytes as f64 / 1024.0;
    let mut unit = 0;
    while n >= 1024.0 && unit + 1 < UNITS.len() {
        n /= 1024.0;
        unit += 1;
    }
    format!("{n:.1} {}", UNITS[unit])
}

/// `250ms`, `30s`, `5m 10s`, `2h 5m`, `7d`, `3d 4h`: the two largest units, so a setting reads
/// as it was written.
pub fn duration(seconds: f64) -> String {
    if seconds < 1.0 {
        return format!("{}ms", (seconds * 1000.0).round() as u64);
    }
    if seconds < 10.0 && seconds.fract() != 0.0 {
        return format!("{seconds:.1}s");
    }
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let s = seconds.round() as u64;
    let Some(i) = UNITS.iter().position(|(unit, _)| s >= *unit) else {
        return "0s".to_owned();
    };
    let (unit, name) = UNITS[i];
    let mut out = format!("{}{name}", s / unit);
    if let Some((next, next_name)) = UNITS.get(i + 1) {
        let n = s % unit / next;
        if n > 0 {
            out.push_str(&format!(" {n}{next_name}"));
        }
    }
    out
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long ago `at_ms` (milliseconds since the epoch) was.
pub fn age(at_ms: u64) -> String {
    duration(now_ms().saturating_sub(at_ms) as f64 / 1000.0)
}

/// A cell for a JSON field that may be absent or `null`: `-` then.
pub fn cell(v: &Value, f: impl Fn(&Value) -> Option<String>) -> String {
    if v.is_null() {
        return "-".to_owned();
    }
    f(v).unwrap_or_else(|| "-".to_owned())
}

pub fn num(v: &Value) -> String {
    cell(v, |v| Some(v.as_u64()?.to_string()))
}

/// `none` for a setting without a limit.
pub fn limit(v: &Value, f: impl Fn(&Value) -> Option<String>) -> String {
    if v.is_null() {
        "none".to_owned()
    } else {
        cell(v, f)
    }
}

/// Text on one line of at most `max` characters: line breaks, tabs and other control characters
/// escaped (quotes are not: a JSON body stays readable), the rest cut with `…`.
pub fn one_line(text: &str, max: usize) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => escaped.extend(c.escape_default()),
            c => escaped.push(c),
        }
    }
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `HH:MM:SS.mmm` UTC of `at_ms`.
pub fn clock(at_ms: u64) -> String {
    let ms = at_ms % 1000;
    let s = at_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{ms:03}",
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(64 * 1024 * 1024), "64.0 MiB");
        assert_eq!(duration(0.25), "250ms");
        assert_eq!(duration(1.5), "1.5s");
        assert_eq!(duration(30.0), "30s");
        assert_eq!(duration(300.0), "5m");
        assert_eq!(duration(310.0), "5m 10s");
        assert_eq!(duration(7.0 * 86_400.0), "7d");
        assert_eq!(duration(86_400.0 + 7200.0 + 60.0), "1d 2h");
        assert_eq!(duration(3600.0 + 5.0), "1h");
        assert_eq!(clock(3_723_004), "01:02:03.004");
    }

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let mut t = Table::new(&["NAME", ">COUNT"]);
        t.row(vec!["orders".into(), "3".into()]);
        t.row(vec!["a".into(), "1200".into()]);
        assert_eq!(t.render(), "NAME    COUNT\norders      3\na        1200\n");
    }

    #[test]
    fn bodies_fit_on_one_line() {
        assert_eq!(one_line("a\nb", 10), "a\\nb");
        assert_eq!(one_line("abcdef", 4), "abc…");
        assert_eq!(one_line("{\"id\": 1}\t\u{1}", 20), "{\"id\": 1}\\t\\u{1}");
    }
}
