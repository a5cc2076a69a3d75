//! Golden and layout tests of the ESC/POS renderer.

use orderd_protocol::{OrderType, PrintCopy, TicketLine};

use super::status::decode_text;
use super::*;

fn lines() -> Vec<TicketLine> {
    vec![
        TicketLine {
            item_id: "tave".into(),
            name: "Tavë kosi".into(),
            quantity: 2,
            modifiers: vec!["Pa qepë".into()],
            note: Some("Shumë e nxehtë".into()),
            allergens: vec![],
        },
        TicketLine {
            item_id: "burger".into(),
            name: "Burger".into(),
            quantity: 1,
            modifiers: vec![],
            note: None,
            allergens: vec![],
        },
    ]
}

fn doc(l: &[TicketLine], copy: PrintCopy) -> TicketDoc<'_> {
    TicketDoc {
        short: "007",
        number: "ORD-20261122-007",
        station: "grill",
        order_type: OrderType::DineIn,
        table: Some("T4"),
        time: "13:05",
        lines: l,
        note: None,
        allergy: None,
        copy,
        banner: None,
    }
}

#[test]
fn a_cancel_or_change_slip_says_so_first_and_large() {
    let l = lines();
    let mut d = doc(&l, PrintCopy::Original);
    d.banner = Some("CANCELLED");
    let text = render_text(&d, 32);
    assert!(text[0].contains("** CANCELLED **"), "{text:?}");
    let bytes = render(&d, &EscPosConfig::default());
    let banner = bytes
        .windows(15)
        .position(|w| w == b"** CANCELLED **")
        .expect("the banner is printed");
    let short = bytes.windows(4).position(|w| w == b"007\n").unwrap();
    assert!(banner < short, "before the number");
    // Double size and white on black just before it.
    assert_eq!(
        &bytes[banner - 6..banner],
        &[0x1d, b'B', 1, 0x1d, b'!', 0x11]
    );
}

#[test]
fn albanian_letters_and_the_euro_use_pc858() {
    assert_eq!(
        encode_text("ë ç Ë Ç"),
        [0x89, b' ', 0x87, b' ', 0xd3, b' ', 0x80]
    );
    assert_eq!(encode_text("Tavë"), [b'T', b'a', b'v', 0x89]);
    assert_eq!(
        encode_text("€ 5"),
        [0xd5, b' ', b'5'],
        "PC858 has the euro at 0xD5"
    );
    // Punctuation the page lacks by its nearest ASCII, accents by their letter.
    assert_eq!(encode_text("Burger — Medium"), b"Burger - Medium");
    assert_eq!(encode_text("“ok”…"), b"\"ok\"...");
    assert_eq!(encode_text("Łódź"), [b'L', 0xa2, b'd', b'z']);
    // No glyph at all: a visible question mark, never raw UTF-8 bytes.
    assert_eq!(encode_text("a\tb"), [b'a', b'?', b'b']);
    assert_eq!(encode_text("🍔"), [b'?']);
}

#[test]
fn each_code_page_has_its_own_bytes_and_select_command() {
    // PC437: ç and ë, no Ë (its letter instead) and no euro sign (spelled out).
    assert_eq!(
        encode_text_in(CodePage::Pc437, "ë ç Ë"),
        [0x89, b' ', 0x87, b' ', b'E']
    );
    assert_eq!(encode_text_in(CodePage::Pc437, "€5"), b"EUR5");
    // PC850: every Albanian letter, no euro sign.
    assert_eq!(
        encode_text_in(CodePage::Pc850, "Ë€"),
        [0xd3, b'E', b'U', b'R']
    );
    // WPC1252: Latin-1 positions and the euro at 0x80.
    assert_eq!(
        encode_text_in(CodePage::Wpc1252, "ë ç Ë Ç €"),
        [0xeb, b' ', 0xe7, b' ', 0xcb, b' ', 0xc7, b' ', 0x80]
    );
    let l = lines();
    for page in CodePage::ALL {
        let cfg = EscPosConfig {
            codepage: page,
            columns: Some(42),
            ..EscPosConfig::default()
        };
        let bytes = render(&doc(&l, PrintCopy::Original), &cfg);
        assert_eq!(&bytes[..5], &[0x1b, b'@', 0x1b, b't', page.select()]);
        // The emulator reads it back in the page the ticket selected.
        assert!(decode_text(&bytes).contains("Tavë kosi"), "{page:?}");
        assert!(
            decode_text(&bytes).contains(&"-".repeat(42)),
            "{page:?}: 42 columns"
        );
        assert!(
            mark_reprint(&bytes)
                .windows(15)
                .any(|w| w == b"*** REPRINT ***"),
            "{page:?}"
        );
        assert_eq!(Some(page), CodePage::parse(page.as_str()));
    }
}

#[test]
fn a_lines_allergens_print_emphasised_under_it() {
    let mut l = lines();
    l[1].allergens = vec!["gluten".into(), "milk".into(), "mustard".into()];
    let bytes = render(&doc(&l, PrintCopy::Original), &EscPosConfig::default());
    let text = decode_text(&bytes);
    let burger = text.find("1x Burger").expect("the line");
    let allergens = text
        .find("ALLERGENS/ALERGJENE: gluten, milk, mustard")
        .expect("its allergens");
    assert!(allergens > burger, "{text}");
    // Bold and white on black just before them.
    let at = bytes.windows(10).position(|w| w == b"ALLERGENS/").unwrap();
    assert_eq!(&bytes[at - 9..at - 3], &[0x1b, b'E', 1, 0x1d, b'B', 1]);
    // A line without allergens prints none.
    assert_eq!(text.matches("ALLERGENS").count(), 1);
}

#[test]
fn an_allergy_note_prints_large_above_the_lines() {
    let l = lines();
    let mut d = doc(&l, PrintCopy::Original);
    d.allergy = Some("peanuts, sesame; no nuts at all in this order please");
    let bytes = render(&d, &EscPosConfig::default());
    let text = decode_text(&bytes);
    let allergy = text
        .find("ALLERGY/ALERGJI: peanuts, sesame")
        .expect("the note");
    let first_line = text
        .find("2x ")
        .or_else(|| text.find("1x "))
        .expect("a line");
    assert!(allergy < first_line, "{text}");
    // Bold, white on black, double height just before it.
    let at = bytes.windows(8).position(|w| w == b"ALLERGY/").unwrap();
    assert_eq!(
        &bytes[at - 9..at],
        &[0x1b, b'E', 1, 0x1d, b'B', 1, 0x1d, b'!', 0x01]
    );
    // Wrapped, nothing lost.
    assert!(text.contains("please"), "{text}");
    // No note, nothing printed.
    let plain = decode_text(&render(
        &doc(&l, PrintCopy::Original),
        &EscPosConfig::default(),
    ));
    assert!(!plain.contains("ALLERGY/"), "{plain}");
}

#[test]
fn golden_ticket_bytes() {
    let l = lines();
    let bytes = render(
        &doc(&l, PrintCopy::Original),
        &EscPosConfig {
            width: PaperWidth::Mm58,
            cut: true,
            ..EscPosConfig::default()
        },
    );
    let mut g: Vec<u8> = vec![0x1b, b'@', 0x1b, b't', 19];
    g.extend([0x1b, b'a', 1, 0x1d, b'!', 0x33]);
    g.extend(b"007\n");
    g.extend([0x1d, b'!', 0]);
    g.extend(b"ORD-20261122-007\n");
    g.extend([0x1b, b'a', 0, 0x1b, b'E', 1, 0x1d, b'!', 1]);
    g.extend(b"DINE IN - TABLE T4\n");
    g.extend([0x1d, b'!', 0, 0x1b, b'E', 0]);
    g.extend(b"13:05  GRILL\n");
    g.extend([b'-'; 32]);
    g.push(b'\n');
    g.extend([0x1b, b'E', 1]);
    g.extend(b"2x Tav\x89 kosi\n");
    g.extend([0x1b, b'E', 0]);
    g.extend(b"   + Pa qep\x89\n");
    g.extend(b"   ! Shum\x89 e nxeht\x89\n");
    g.extend([0x1b, b'E', 1]);
    g.extend(b"1x Burger\n");
    g.extend([0x1b, b'E', 0]);
    g.extend([0x1b, b'd', 4, 0x1d, b'V', 66, 0]);
    assert_eq!(bytes, g);
}

#[test]
fn reprint_has_a_banner_and_the_original_does_not() {
    let l = lines();
    let cfg = EscPosConfig::default();
    let reprint = render(&doc(&l, PrintCopy::Reprint), &cfg);
    let original = render(&doc(&l, PrintCopy::Original), &cfg);
    let has = |b: &[u8]| b.windows(15).any(|w| w == b"*** REPRINT ***");
    assert!(has(&reprint) && !has(&original));
    assert_eq!(
        render_text(&doc(&l, PrintCopy::Reprint), 48)[0].trim(),
        "*** REPRINT ***"
    );
}

#[test]
fn lines_fit_the_paper() {
    let long = vec![TicketLine {
        item_id: "x".into(),
        name: "Very long dish name that goes on and on past the edge of any paper roll".into(),
        quantity: 12,
        modifiers: vec!["Extra cheese with a long explanation of how much cheese exactly".into()],
        note: Some("Supercalifragilisticexpialidocious-without-spaces-at-all-here".into()),
        allergens: vec!["gluten".into(), "milk".into()],
    }];
    for width in [PaperWidth::Mm58, PaperWidth::Mm80] {
        let mut d = doc(&long, PrintCopy::Original);
        d.note = Some("Allergy: nuts. Please keep separate from everything else on the grill.");
        let text = render_text(&d, width.columns());
        for line in &text {
            assert!(
                line.chars().count() <= width.columns(),
                "{width:?}: {line:?}"
            );
        }
        assert!(text.iter().any(|l| l.starts_with("12x Very long")));
        assert!(text.iter().any(|l| l.starts_with("NOTE: Allergy")));
    }
    // Without a cutter: no cut command.
    let bytes = render(
        &doc(&long, PrintCopy::Original),
        &EscPosConfig {
            width: PaperWidth::Mm80,
            cut: false,
            ..EscPosConfig::default()
        },
    );
    assert!(!bytes.windows(2).any(|w| w == [0x1d, b'V']));
}

#[test]
fn marking_an_original_as_reprint_equals_rendering_a_reprint() {
    let l = lines();
    let cfg = EscPosConfig::default();
    let original = render(&doc(&l, PrintCopy::Original), &cfg);
    let reprint = render(&doc(&l, PrintCopy::Reprint), &cfg);
    assert_eq!(mark_reprint(&original), reprint);
    assert_eq!(
        mark_reprint(&reprint),
        reprint,
        "marking twice adds no second banner"
    );
    assert_eq!(mark_reprint(b"not a ticket"), b"not a ticket");
}
