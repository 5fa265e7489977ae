//! Text that zru prints: object keys and other untrusted strings with their control
//! characters escaped ([`printable`]), and URLs with their credentials hidden
//! ([`redact_urls`]).

/// `text` safe to print to a terminal or a tab-separated line: C0 control characters
/// (NUL, ESC, tab, newline, ...), DEL and C1 control characters become `\xNN` /
/// `\u{NNNN}`, and a backslash becomes `\\` (so an escape is never ambiguous).
/// Everything else (including non-ASCII letters) is kept.
pub fn printable(text: &str) -> String {
    if !text.chars().any(|c| c.is_control() || c == '\\') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A JSON document with its DEL and C1 control characters written as `\u00NN` escapes.
/// JSON does not require these escaped (serde_json escapes only C0), but a terminal
/// may act on them; in a serialized document they can only occur inside strings,
/// where the escape means the same character.
pub fn json_for_terminal(json: &str) -> String {
    let is_del_or_c1 = |c: char| matches!(c as u32, 0x7f..=0x9f);
    if !json.contains(is_del_or_c1) {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if is_del_or_c1(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` with the credentials of every URL in it hidden: `https://user:secret@host`
/// becomes `https://user:***@host`, `https://token@host` becomes `https://***@host`.
/// Text without `://` is returned unchanged.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the path, query, fragment or anything that ends a URL
        // in a message.
        let end = tail
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '<' | '>' | ')' | ']' | '`'
                ) || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                let userinfo = &authority[..userinfo_end];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str("***"),
                }
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A line zru prints: credentials in URLs hidden, then control characters escaped.
pub fn safe_line(text: &str) -> String {
    printable(&redact_urls(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_for_terminal_escapes_del_and_c1_and_stays_the_same_json() {
        let doc = serde_json::json!({"key": "sst/a\u{7f}b\u{9b}c\u{85}é.nc"});
        let raw = serde_json::to_string(&doc).unwrap();
        let safe = json_for_terminal(&raw);
        assert!(
            !safe.chars().any(|c| matches!(c as u32, 0x7f..=0x9f)),
            "{safe}"
        );
        assert!(safe.contains("\\u007f") && safe.contains("\\u009b") && safe.contains('é'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn control_characters_are_escaped_and_letters_kept() {
        assert_eq!(printable("sst/a.nc"), "sst/a.nc");
        assert_eq!(printable("sst/é ü.nc"), "sst/é ü.nc");
        assert_eq!(
            printable("a\0b\x1b[31mc\x7fd\u{9b}e\tf\ng\\h"),
            "a\\x00b\\x1b[31mc\\x7fd\\u{009b}e\\x09f\\x0ag\\\\h"
        );
        assert!(!printable("\x1b]0;title\x07").chars().any(char::is_control));
    }

    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(
            redact_urls("endpoint https://user:s3cr%40t@host:9000/x failed"),
            "endpoint https://user:***@host:9000/x failed"
        );
        assert_eq!(
            redact_urls("(url: http://tok@h) and s3://b/k"),
            "(url: http://***@h) and s3://b/k"
        );
        assert_eq!(redact_urls("no url here"), "no url here");
        assert_eq!(
            redact_urls("a://u:p@h b://u2:p2@h2"),
            "a://u:***@h b://u2:***@h2"
        );
        assert!(!safe_line("x http://u:pw@h\x1b").contains("pw"));
    }
}
