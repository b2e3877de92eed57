//! Text for people: durations in words, server text made safe for a terminal, tables.

use std::time::{Duration, SystemTime};

/// `3 d 4 h`, `5 h 12 min`, `7 min`, `42 s`: the two largest units.
pub fn duration(span: Duration) -> String {
    let secs = span.as_secs();
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// `in 5 min` or `5 min ago`, as seen at `now`.
pub fn relative(at: SystemTime, now: SystemTime) -> String {
    match at.duration_since(now) {
        Ok(ahead) => format!("in {}", duration(ahead)),
        Err(past) => format!("{} ago", duration(past.duration())),
    }
}

/// Text the server stored from someone's request (a `User-Agent`): control characters would
/// drive the terminal, so they become `?`, and it is cut to `max` characters.
pub fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.pop();
        out.push('…');
    }
    out
}

/// Columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let d = |secs| duration(Duration::from_secs(secs));
        assert_eq!(d(42), "42 s");
        assert_eq!(d(7 * 60 + 5), "7 min");
        assert_eq!(d(3 * 3600), "3 h");
        assert_eq!(d(5 * 3600 + 12 * 60), "5 h 12 min");
        assert_eq!(d(14 * 86_400), "14 d");
        assert_eq!(d(86_400 + 3600 * 23 + 59), "1 d 23 h");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(relative(now + Duration::from_secs(90), now), "in 1 min");
        assert_eq!(relative(now - Duration::from_secs(7200), now), "2 h ago");
    }

    #[test]
    fn server_text_cannot_drive_the_terminal() {
        assert_eq!(clean("curl/8.5.0", 40), "curl/8.5.0");
        assert_eq!(clean("evil\u{1b}[2J\r\nagent", 40), "evil?[2J??agent");
        assert_eq!(clean("abcdefgh", 5), "abcd…");
        // Exactly as long as the room: whole.
        assert_eq!(clean("abcde", 5), "abcde");
    }

    #[test]
    fn tables_line_up() {
        let rows = vec![
            vec!["1".to_owned(), "long device".to_owned()],
            vec!["22".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            table(&["ID", "DEVICE"], &rows),
            "ID  DEVICE\n1   long device\n22  x"
        );
    }
}
