//! The ticket layout and its ESC/POS bytes.

use orderd_protocol::{OrderType, PrintCopy, TicketLine};

use super::config::{CodePage, EscPosConfig};

const ESC: u8 = 0x1b;
const GS: u8 = 0x1d;

/// What a ticket shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketDoc<'a> {
    /// The short number the kitchen calls out ("007").
    pub short: &'a str,
    /// The full order number.
    pub number: &'a str,
    /// Station name, printed under the number.
    pub station: &'a str,
    /// Dine-in, takeaway or delivery.
    pub order_type: OrderType,
    /// Table label, for dine-in.
    pub table: Option<&'a str>,
    /// Local time the order was placed, already formatted ("13:05").
    pub time: &'a str,
    /// The station's lines.
    pub lines: &'a [TicketLine],
    /// The order's note.
    pub note: Option<&'a str>,
    /// The order's allergy note: printed above the lines, large, bold, white on black, in
    /// English and Albanian.
    pub allergy: Option<&'a str>,
    /// Original or reprint.
    pub copy: PrintCopy,
    /// What the slip does when it is not a new ticket (`CANCELLED`, `CHANGED`): printed first,
    /// large and white on black, so a cook sees at a glance that it is not a new order.
    pub banner: Option<&'a str>,
}

fn type_label(t: OrderType) -> &'static str {
    match t {
        OrderType::DineIn => "DINE IN",
        OrderType::Takeaway => "TAKEAWAY",
        OrderType::Delivery => "DELIVERY",
    }
}

/// Text in PC858: ASCII as is, other characters through the code page; punctuation the page
/// lacks by its nearest ASCII (dashes, curly quotes, ellipsis), a letter with an accent the page
/// lacks by the letter, `?` for the rest. Never raw UTF-8 bytes.
pub fn encode_text(s: &str) -> Vec<u8> {
    encode_text_in(CodePage::Pc858, s)
}

/// [`encode_text`] in a given code page.
pub fn encode_text_in(page: CodePage, s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c as u8);
            continue;
        }
        if c != '\u{fffd}'
            && let Some(i) = page.high().chars().position(|h| h == c)
        {
            out.push(0x80 + i as u8);
            continue;
        }
        match c {
            '\u{2013}' | '\u{2014}' | '\u{2212}' => out.push(b'-'),
            '\u{2018}' | '\u{2019}' | '\u{201a}' => out.push(b'\''),
            '\u{201c}' | '\u{201d}' | '\u{201e}' => out.push(b'"'),
            '\u{2026}' => out.extend_from_slice(b"..."),
            '\u{2022}' => out.push(b'*'),
            '\u{20ac}' => out.extend_from_slice(b"EUR"),
            _ => out.push(base_letter(c).unwrap_or(b'?')),
        }
    }
    out
}

/// The ASCII letter under an accented letter the code page lacks (Latin-1 letters for PC437,
/// Central European names for the others).
fn base_letter(c: char) -> Option<u8> {
    let map: &[(&str, u8)] = &[
        ("ăąāàáâãäå", b'a'),
        ("ĂĄĀÀÁÂÃÄÅ", b'A'),
        ("ćčĉç", b'c'),
        ("ĆČĈÇ", b'C'),
        ("ďđ", b'd'),
        ("ĎĐ", b'D'),
        ("ęěēèéêë", b'e'),
        ("ĘĚĒÈÉÊË", b'E'),
        ("ìíîï", b'i'),
        ("ÌÍÎÏ", b'I'),
        ("ñ", b'n'),
        ("Ñ", b'N'),
        ("òóôõöø", b'o'),
        ("ÒÓÔÕÖØ", b'O'),
        ("ùúûü", b'u'),
        ("ÙÚÛÜ", b'U'),
        ("ýÿ", b'y'),
        ("Ý", b'Y'),
        ("ğ", b'g'),
        ("Ğ", b'G'),
        ("ł", b'l'),
        ("Ł", b'L'),
        ("ńň", b'n'),
        ("ŃŇ", b'N'),
        ("őō", b'o'),
        ("ŐŌ", b'O'),
        ("řŕ", b'r'),
        ("ŘŔ", b'R'),
        ("śšşș", b's'),
        ("ŚŠŞȘ", b'S'),
        ("ťţț", b't'),
        ("ŤŢȚ", b'T'),
        ("ůűū", b'u'),
        ("ŮŰŪ", b'U'),
        ("źžż", b'z'),
        ("ŹŽŻ", b'Z'),
    ];
    map.iter().find(|(set, _)| set.contains(c)).map(|(_, b)| *b)
}

/// Splits text into lines of at most `width` characters, at spaces where possible.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        let len = current.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// The ticket as plain text lines (what [`render`] prints, without the styling).
pub fn render_text(doc: &TicketDoc<'_>, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    if doc.copy == PrintCopy::Reprint {
        out.push(center("*** REPRINT ***", width));
    }
    if let Some(b) = doc.banner {
        out.push(center(&format!("** {b} **"), width));
    }
    out.push(center(doc.short, width));
    out.push(center(doc.number, width));
    let mut head = String::from(type_label(doc.order_type));
    if let Some(t) = doc.table {
        head.push_str(" - TABLE ");
        head.push_str(t);
    }
    out.push(head);
    out.push(format!("{}  {}", doc.time, doc.station.to_uppercase()));
    out.push("-".repeat(width));
    for line in doc.lines {
        out.extend(wrap(&format!("{}x {}", line.quantity, line.name), width));
        for m in &line.modifiers {
            out.extend(
                wrap(&format!("+ {m}"), width - 3)
                    .into_iter()
                    .map(|l| format!("   {l}")),
            );
        }
        if let Some(n) = &line.note {
            out.extend(
                wrap(&format!("! {n}"), width - 3)
                    .into_iter()
                    .map(|l| format!("   {l}")),
            );
        }
    }
    if let Some(n) = doc.note {
        out.push("-".repeat(width));
        out.extend(wrap(&format!("NOTE: {n}"), width));
    }
    out
}

fn center(s: &str, width: usize) -> String {
    let len = s.chars().count();
    if len >= width {
        return s.to_owned();
    }
    format!("{}{s}", " ".repeat((width - len) / 2))
}

/// The REPRINT banner: centered, bold, white on black.
fn reprint_banner() -> Vec<u8> {
    let mut b = vec![ESC, b'a', 1, ESC, b'E', 1, GS, b'B', 1];
    b.extend_from_slice(b"*** REPRINT ***");
    b.push(b'\n');
    b.extend([GS, b'B', 0, ESC, b'E', 0]);
    b
}

/// An original ticket's bytes turned into the same ticket with the REPRINT banner, exactly as
/// [`render`] would print it with [`PrintCopy::Reprint`]. Bytes that are already a reprint, or
/// not a ticket of [`render`], are returned unchanged.
pub fn mark_reprint(original: &[u8]) -> Vec<u8> {
    let banner = reprint_banner();
    let head = original.get(..5).filter(|h| {
        h[..4] == [ESC, b'@', ESC, b't'] && CodePage::ALL.iter().any(|c| c.select() == h[4])
    });
    match head.map(|h| (h, &original[5..])) {
        Some((head, rest)) if !rest.starts_with(&banner) => {
            let mut out = Vec::with_capacity(original.len() + banner.len());
            out.extend(head);
            out.extend(banner);
            out.extend(rest);
            out
        }
        _ => original.to_vec(),
    }
}

/// The ticket as ESC/POS bytes.
pub fn render(doc: &TicketDoc<'_>, cfg: &EscPosConfig) -> Vec<u8> {
    let width = cfg.columns();
    let mut b = vec![ESC, b'@', ESC, b't', cfg.codepage.select()];
    let text = |b: &mut Vec<u8>, s: &str| {
        b.extend(encode_text_in(cfg.codepage, s));
        b.push(b'\n');
    };
    if doc.copy == PrintCopy::Reprint {
        b.extend(reprint_banner());
    }
    if let Some(what) = doc.banner {
        // Double size, bold, white on black, centered: "** CANCELLED **".
        b.extend([ESC, b'a', 1, ESC, b'E', 1, GS, b'B', 1, GS, b'!', 0x11]);
        text(&mut b, &format!("** {what} **"));
        b.extend([GS, b'!', 0x00, GS, b'B', 0, ESC, b'E', 0]);
    }
    // The short number at 4× size, centered.
    b.extend([ESC, b'a', 1, GS, b'!', 0x33]);
    text(&mut b, doc.short);
    b.extend([GS, b'!', 0x00]);
    text(&mut b, doc.number);
    b.extend([ESC, b'a', 0, ESC, b'E', 1, GS, b'!', 0x01]);
    let mut head = String::from(type_label(doc.order_type));
    if let Some(t) = doc.table {
        head.push_str(" - TABLE ");
        head.push_str(t);
    }
    text(&mut b, &head);
    b.extend([GS, b'!', 0x00, ESC, b'E', 0]);
    text(
        &mut b,
        &format!("{}  {}", doc.time, doc.station.to_uppercase()),
    );
    text(&mut b, &"-".repeat(width));
    if let Some(a) = doc.allergy {
        // Double height, bold, white on black: the first thing under the header.
        b.extend([ESC, b'E', 1, GS, b'B', 1, GS, b'!', 0x01]);
        for l in wrap(&format!("ALLERGY/ALERGJI: {a}"), width) {
            text(&mut b, &l);
        }
        b.extend([GS, b'!', 0x00, GS, b'B', 0, ESC, b'E', 0]);
        text(&mut b, &"-".repeat(width));
    }
    for line in doc.lines {
        b.extend([ESC, b'E', 1]);
        for l in wrap(&format!("{}x {}", line.quantity, line.name), width) {
            text(&mut b, &l);
        }
        b.extend([ESC, b'E', 0]);
        for m in &line.modifiers {
            for l in wrap(&format!("+ {m}"), width - 3) {
                text(&mut b, &format!("   {l}"));
            }
        }
        if let Some(n) = &line.note {
            for l in wrap(&format!("! {n}"), width - 3) {
                text(&mut b, &format!("   {l}"));
            }
        }
        // Allergens stand out: bold, white on black, in English and Albanian.
        if !line.allergens.is_empty() {
            b.extend([ESC, b'E', 1, GS, b'B', 1]);
            let all = line.allergens.join(", ");
            for l in wrap(&format!("ALLERGENS/ALERGJENE: {all}"), width - 3) {
                text(&mut b, &format!("   {l}"));
            }
            b.extend([GS, b'B', 0, ESC, b'E', 0]);
        }
    }
    if let Some(n) = doc.note {
        text(&mut b, &"-".repeat(width));
        for l in wrap(&format!("NOTE: {n}"), width) {
            text(&mut b, &l);
        }
    }
    // Feed 4 lines, then a partial cut.
    b.extend([ESC, b'd', 4]);
    if cfg.cut {
        b.extend([GS, b'V', 66, 0]);
    }
    b
}
