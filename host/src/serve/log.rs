//! Structured logs: one line per event on stderr in logfmt (`ts=… level=info event=listening
//! addr=127.0.0.1:8080`), so people can read them and tools can parse them without a logging stack.

use std::fmt::{Display, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes one event with its fields. Values with spaces, quotes or `=` are quoted.
pub fn event(level: &str, event: &str, fields: &[(&str, &dyn Display)]) {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut line = format!("ts={}.{:03} level={level} event={event}", ms / 1000, ms % 1000);
    for (key, value) in fields {
        let text = value.to_string();
        if text.is_empty() || text.contains([' ', '"', '=', '\n']) {
            let _ = write!(line, " {key}={text:?}");
        } else {
            let _ = write!(line, " {key}={text}");
        }
    }
    eprintln!("{line}");
}

/// An `info` event.
pub fn info(name: &str, fields: &[(&str, &dyn Display)]) {
    event("info", name, fields);
}

/// A `warn` event.
pub fn warn(name: &str, fields: &[(&str, &dyn Display)]) {
    event("warn", name, fields);
}
