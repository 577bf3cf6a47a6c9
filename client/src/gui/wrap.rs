//! Breaking a line into rows that fit the conversation's width, with a
//! hanging indent: the rows after the first start under the message's
//! text, not under its time (FLTK's own wrapping cannot indent). Words
//! move whole to the next row; a word wider than a row is cut. Widths come
//! from a `measure` function, so tests use a fixed-width one and the view
//! measures with the real fonts.

use super::format::{Line, Role};

/// One row: its parts, left to right.
pub type Row = Vec<(Role, String)>;

/// The rows of `line` in `width` pixels. `measure(role, text)` is the
/// width of `text` in that role's font.
pub fn wrap(line: &Line, width: f64, measure: &dyn Fn(Role, &str) -> f64) -> Vec<Row> {
    let head = &line.parts[..line.indent.min(line.parts.len())];
    let head_width: f64 = head.iter().map(|(role, text)| measure(*role, text)).sum();
    // Hang under the text when that leaves room; else under the name (after the time); else not at all.
    let time_width = head.first().map_or(0.0, |(role, text)| measure(*role, text));
    let hang = [head_width, time_width].into_iter().find(|&hang| hang <= width / 3.0).unwrap_or(0.0);
    let space = measure(Role::Text, " ").max(1.0);
    let indent = " ".repeat((hang / space).round() as usize);
    let indent_width = measure(Role::Text, &indent);

    let mut rows: Vec<Row> = vec![head.to_vec()];
    let mut x = head_width;
    for (role, text) in &line.parts[head.len()..] {
        for word in text.split_inclusive(' ') {
            let word_width = measure(*role, word.trim_end());
            let row_has_text = rows.len() > 1 || rows[0].len() > head.len() || head.is_empty() && !rows[0].is_empty();
            if x + word_width > width && (row_has_text || x > indent_width) {
                rows.push(vec![(Role::Text, indent.clone())]);
                x = indent_width;
            }
            if x + word_width <= width {
                push(rows.last_mut().expect("there is always a row"), *role, word);
                x += measure(*role, word);
                continue;
            }
            // Wider than a whole row: cut it, a character at a time.
            for c in word.chars() {
                let c_width = measure(*role, c.encode_utf8(&mut [0; 4]));
                if x + c_width > width && x > indent_width {
                    rows.push(vec![(Role::Text, indent.clone())]);
                    x = indent_width;
                }
                push(rows.last_mut().expect("there is always a row"), *role, c.encode_utf8(&mut [0; 4]));
                x += c_width;
            }
        }
    }
    rows
}

/// Appends to a row, joining the last part when the role is the same.
fn push(row: &mut Row, role: Role, text: &str) {
    match row.last_mut() {
        Some((last, part)) if *last == role => part.push_str(text),
        _ => row.push((role, text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::format::Tone;

    /// Ten pixels per character, whatever the font.
    fn fixed(_: Role, text: &str) -> f64 {
        10.0 * text.chars().count() as f64
    }

    fn line(parts: &[(Role, &str)], indent: usize) -> Line {
        let parts = parts.iter().map(|(role, text)| (*role, text.to_string())).collect();
        Line { tone: Tone::Public, parts, indent }
    }

    fn texts(rows: &[Row]) -> Vec<String> {
        rows.iter().map(|row| row.iter().map(|(_, text)| text.as_str()).collect()).collect()
    }

    #[test]
    fn a_line_that_fits_is_one_row() {
        let short =
            line(&[(Role::Time, "09:05 "), (Role::Name(1), "bob"), (Role::Text, ": "), (Role::Text, "hola")], 3);
        assert_eq!(texts(&wrap(&short, 300.0, &fixed)), ["09:05 bob: hola"]);
    }

    #[test]
    fn wrapped_rows_hang_under_the_text_not_under_the_time() {
        let long = line(
            &[
                (Role::Time, "09:05 "),
                (Role::Name(1), "bo"),
                (Role::Text, ": "),
                (Role::Text, "one two three four five six seven"),
            ],
            3,
        );
        let rows = wrap(&long, 300.0, &fixed);
        assert_eq!(texts(&rows), ["09:05 bo: one two three four ", "          five six seven"]);
        assert_eq!(rows[0][1], (Role::Name(1), "bo".into()), "the parts keep their roles");
    }

    #[test]
    fn a_narrow_window_hangs_under_the_name_or_not_at_all() {
        let long = line(
            &[
                (Role::Time, "09:05 "),
                (Role::Name(1), "a_long_nickname"),
                (Role::Text, ": "),
                (Role::Text, "aa bb cc dd"),
            ],
            3,
        );
        assert_eq!(texts(&wrap(&long, 300.0, &fixed)), ["09:05 a_long_nickname: aa bb ", "      cc dd"]);
        assert_eq!(texts(&wrap(&long, 150.0, &fixed)), ["09:05 a_long_nickname: ", "aa bb cc dd"]);
    }

    #[test]
    fn a_word_wider_than_a_row_is_cut() {
        let long = line(&[(Role::Time, "09:05 "), (Role::Text, "abcdefghijklmnopqrstuvwxyz0123")], 1);
        assert_eq!(texts(&wrap(&long, 200.0, &fixed)), ["09:05 abcdefghijklmn", "      opqrstuvwxyz01", "      23"]);
    }
}
