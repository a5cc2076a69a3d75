//! The guest check (the printed bill), the Z report's slip, and their ESC/POS bytes. The bill: the restaurant's name, address
//! and tax id, table, check number, waiter, guests, each line with its price and discount,
//! subtotal, discounts, VAT per rate, total, payments and change, and "not a fiscal receipt"
//! unless a fiscal code is given, in English or Albanian.

use orderd_protocol::{BillPrint, VatLine, ZReport};

use super::config::EscPosConfig;
use super::render::encode_text_in;

const ESC: u8 = 0x1b;
const GS: u8 = 0x1d;

/// What a guest check shows besides the bill itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillHeader<'a> {
    /// The restaurant's name.
    pub site_name: &'a str,
    /// Its address (may be empty).
    pub address: &'a str,
    /// Its tax id (may be empty).
    pub tax_id: &'a str,
    /// Local date and time, already formatted.
    pub time: &'a str,
    /// ISO 4217 currency.
    pub currency: &'a str,
    /// Digits of the minor unit.
    pub minor_digits: u8,
    /// A fiscal plugin's code for this bill; without one the slip says it is not a receipt.
    pub fiscal_code: Option<&'a str>,
}

/// The words of a guest check in one language.
struct Words {
    table: &'static str,
    check: &'static str,
    waiter: &'static str,
    guests: &'static str,
    subtotal: &'static str,
    discount: &'static str,
    total: &'static str,
    vat: &'static str,
    paid: &'static str,
    tip: &'static str,
    change: &'static str,
    balance: &'static str,
    rounding: &'static str,
    copy: &'static str,
    not_fiscal: &'static str,
    fiscal: &'static str,
    tax_id: &'static str,
    thanks: &'static str,
}

const EN: Words = Words {
    table: "Table",
    check: "Check",
    waiter: "Waiter",
    guests: "Guests",
    subtotal: "Subtotal",
    discount: "Discount",
    total: "TOTAL",
    vat: "VAT",
    paid: "Paid",
    tip: "Tip",
    change: "Change",
    balance: "To pay",
    rounding: "Rounding",
    copy: "COPY",
    not_fiscal: "NOT A FISCAL RECEIPT",
    fiscal: "Fiscal code",
    tax_id: "Tax id",
    thanks: "Thank you!",
};

const SQ: Words = Words {
    table: "Tavolina",
    check: "Fatura",
    waiter: "Kamarieri",
    guests: "Klientë",
    subtotal: "Nëntotali",
    discount: "Zbritje",
    total: "TOTALI",
    vat: "TVSH",
    paid: "Paguar",
    tip: "Bakshish",
    change: "Kusuri",
    balance: "Për të paguar",
    rounding: "Rrumbullakim",
    copy: "KOPJE",
    not_fiscal: "NUK ËSHTË KUPON FISKAL",
    fiscal: "Kodi fiskal",
    tax_id: "NIPT",
    thanks: "Faleminderit!",
};

fn words(lang: &str) -> &'static Words {
    if lang == "sq" { &SQ } else { &EN }
}

/// An amount in minor units as text with its decimal point: `1234` with 2 digits is `12.34`.
pub fn money(amount: i64, digits: u8) -> String {
    if digits == 0 {
        return amount.to_string();
    }
    let scale = 10i64.pow(u32::from(digits));
    let sign = if amount < 0 { "-" } else { "" };
    let a = amount.unsigned_abs();
    let s = scale.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        a / s,
        a % s,
        width = usize::from(digits)
    )
}

/// `left` and `right` on one line of `width` columns (right-aligned).
fn columns(left: &str, right: &str, width: usize) -> String {
    let l = left.chars().count();
    let r = right.chars().count();
    if l + r + 1 > width {
        let keep = width.saturating_sub(r + 1);
        let cut: String = left.chars().take(keep).collect();
        return format!("{cut} {right}");
    }
    format!("{left}{}{right}", " ".repeat(width - l - r))
}

fn center(s: &str, width: usize) -> String {
    let len = s.chars().count();
    if len >= width {
        return s.to_owned();
    }
    format!("{}{s}", " ".repeat((width - len) / 2))
}

fn rate(v: &VatLine) -> String {
    let whole = v.rate_bp / 100;
    let frac = v.rate_bp % 100;
    if frac == 0 {
        format!("{whole}%")
    } else {
        format!("{whole}.{frac:02}%")
    }
}

/// The guest check as plain text lines (what [`render_bill`] prints, without the styling).
pub fn bill_text(bill: &BillPrint, head: &BillHeader<'_>, width: usize) -> Vec<String> {
    let w = words(&bill.lang);
    let m = |a: i64| money(a, head.minor_digits);
    let mut out = Vec::new();
    if bill.copy {
        out.push(center(&format!("*** {} ***", w.copy), width));
    }
    out.push(center(head.site_name, width));
    if !head.address.is_empty() {
        out.push(center(head.address, width));
    }
    if !head.tax_id.is_empty() {
        out.push(center(&format!("{} {}", w.tax_id, head.tax_id), width));
    }
    out.push("-".repeat(width));
    let number = format!("{} {}-{}", w.check, bill.check.day, bill.check.number);
    out.push(columns(&number, head.time, width));
    if let Some(t) = &bill.table_label {
        out.push(columns(
            &format!("{} {t}", w.table),
            &format!("{} {}", w.guests, bill.covers),
            width,
        ));
    }
    out.push(format!("{}: {}", w.waiter, bill.waiter));
    out.push("-".repeat(width));
    for l in &bill.lines {
        if l.quantity == 0 {
            continue;
        }
        out.push(columns(
            &format!("{}x {}", l.quantity, l.name),
            &m(l.gross),
            width,
        ));
        if l.discount > 0 {
            out.push(columns(
                &format!("   {}", w.discount),
                &m(-l.discount),
                width,
            ));
        }
    }
    out.push("-".repeat(width));
    out.push(columns(w.subtotal, &m(bill.subtotal), width));
    let line_discounts: i64 = bill.lines.iter().map(|l| l.discount).sum();
    let discounts = line_discounts + bill.check_discount;
    if discounts > 0 {
        out.push(columns(w.discount, &m(-discounts), width));
    }
    out.push(columns(
        &format!("{} {}", w.total, head.currency),
        &m(bill.total),
        width,
    ));
    for v in &bill.vat {
        out.push(columns(
            &format!("{} {} ({})", w.vat, rate(v), m(v.gross)),
            &m(v.vat),
            width,
        ));
    }
    if !bill.payments.is_empty() {
        out.push("-".repeat(width));
        for p in &bill.payments {
            out.push(columns(
                &format!("{} {}", w.paid, p.method),
                &m(p.amount + p.rounding),
                width,
            ));
            if p.rounding != 0 {
                out.push(columns(
                    &format!("   {}", w.rounding),
                    &m(p.rounding),
                    width,
                ));
            }
            if p.tip > 0 {
                out.push(columns(&format!("   {}", w.tip), &m(p.tip), width));
            }
            if let Some(c) = p.change.filter(|&c| c > 0) {
                out.push(columns(&format!("   {}", w.change), &m(c), width));
            }
        }
    }
    if bill.balance > 0 {
        out.push(columns(w.balance, &m(bill.balance), width));
    }
    out.push("-".repeat(width));
    match head.fiscal_code {
        Some(code) => out.push(center(&format!("{}: {code}", w.fiscal), width)),
        None => out.push(center(w.not_fiscal, width)),
    }
    out.push(center(w.thanks, width));
    out
}

/// The guest check as ESC/POS bytes: the restaurant's name large, the total bold and double
/// height, the COPY banner white on black on a reprint, and a cut.
pub fn render_bill(bill: &BillPrint, head: &BillHeader<'_>, cfg: &EscPosConfig) -> Vec<u8> {
    let width = cfg.columns();
    let lines = bill_text(bill, head, width);
    let w = words(&bill.lang);
    let mut b = vec![ESC, b'@', ESC, b't', cfg.codepage.select()];
    let total_prefix = format!("{} {}", w.total, head.currency);
    let copy = format!("*** {} ***", w.copy);
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if bill.copy && i == 0 && trimmed == copy {
            b.extend([ESC, b'a', 1, ESC, b'E', 1, GS, b'B', 1]);
            b.extend(encode_text_in(cfg.codepage, trimmed));
            b.push(b'\n');
            b.extend([GS, b'B', 0, ESC, b'E', 0, ESC, b'a', 0]);
        } else if trimmed == head.site_name {
            b.extend([ESC, b'a', 1, ESC, b'E', 1, GS, b'!', 0x11]);
            b.extend(encode_text_in(cfg.codepage, trimmed));
            b.push(b'\n');
            b.extend([GS, b'!', 0x00, ESC, b'E', 0, ESC, b'a', 0]);
        } else if line.starts_with(&total_prefix) {
            b.extend([ESC, b'E', 1, GS, b'!', 0x01]);
            b.extend(encode_text_in(cfg.codepage, line));
            b.push(b'\n');
            b.extend([GS, b'!', 0x00, ESC, b'E', 0]);
        } else {
            b.extend(encode_text_in(cfg.codepage, line));
            b.push(b'\n');
        }
    }
    if cfg.cut {
        b.extend([b'\n', b'\n', b'\n', GS, b'V', 66, 0]);
    }
    b
}

/// The Z report as plain text lines: number, day, who closed it (and why, when forced), the
/// day's figures, VAT, payments per method, the cash drawer and the checks left open. Always
/// in `lang` (`en` or `sq`) for the headings, amounts with the currency's decimals.
pub fn z_text(z: &ZReport, head: &BillHeader<'_>, lang: &str, width: usize) -> Vec<String> {
    let sq = lang == "sq";
    let m = |a: i64| money(a, head.minor_digits);
    let fig = &z.figures;
    let day = fig.business_day;
    let mut out = vec![
        center(head.site_name, width),
        center(&format!("Z {}", z.number), width),
        center(
            &format!(
                "{:04}-{:02}-{:02}",
                day / 10_000,
                day / 100 % 100,
                day % 100
            ),
            width,
        ),
        format!("{}: {}", if sq { "Mbyllur" } else { "Closed" }, head.time),
        format!("{}: {}", if sq { "Nga" } else { "By" }, z.actor),
    ];
    if let Some(r) = &z.forced {
        out.push(format!(
            "{}: {r}",
            if sq {
                "Me fatura të hapura"
            } else {
                "Open checks left"
            }
        ));
    }
    out.push("-".repeat(width));
    let rows: [(&str, &str, i64); 9] = [
        ("Checks", "Fatura", i64::from(fig.checks)),
        ("Guests", "Klientë", i64::from(fig.covers)),
        ("Sales", "Shitje", fig.sales),
        ("Discounts", "Zbritje", fig.discounts),
        ("Comps", "Falas", fig.comps),
        ("Voids", "Anulime", fig.voids),
        ("NET", "NETO", fig.net),
        ("Tips", "Bakshish", fig.tips),
        ("Refunds", "Rimbursime", fig.refunds),
    ];
    for (i, (en, al, v)) in rows.iter().enumerate() {
        let value = if i < 2 { v.to_string() } else { m(*v) };
        out.push(columns(if sq { al } else { en }, &value, width));
    }
    for v in &fig.vat {
        out.push(columns(
            &format!(
                "{} {} ({})",
                if sq { "TVSH" } else { "VAT" },
                rate(v),
                m(v.gross)
            ),
            &m(v.vat),
            width,
        ));
    }
    out.push("-".repeat(width));
    for pm in &fig.methods {
        out.push(columns(
            &format!("{} ({})", pm.method, pm.count),
            &m(pm.amount),
            width,
        ));
        if pm.tips != 0 || pm.refunds != 0 {
            out.push(format!(
                "   {} {} / {} {}",
                if sq { "bakshish" } else { "tips" },
                m(pm.tips),
                if sq { "rimbursime" } else { "refunds" },
                m(pm.refunds)
            ));
        }
    }
    out.push("-".repeat(width));
    let cash = &fig.cash;
    out.push(columns(
        if sq { "Fondi" } else { "Float" },
        &m(cash.float),
        width,
    ));
    out.push(columns(
        if sq {
            "Pritet në arkë"
        } else {
            "Cash expected"
        },
        &m(cash.expected),
        width,
    ));
    if let (Some(n), Some(v)) = (cash.counted, cash.variance) {
        out.push(columns(
            if sq { "Numëruar" } else { "Counted" },
            &m(n),
            width,
        ));
        out.push(columns(
            if sq { "Diferenca" } else { "Variance" },
            &m(v),
            width,
        ));
    }
    if !fig.open_checks.is_empty() {
        out.push(format!(
            "{}: {}",
            if sq {
                "Fatura të hapura"
            } else {
                "Open checks"
            },
            fig.open_checks.len()
        ));
    }
    out
}

/// The Z report as ESC/POS bytes (plain text, the number large, a cut).
pub fn render_z(z: &ZReport, head: &BillHeader<'_>, lang: &str, cfg: &EscPosConfig) -> Vec<u8> {
    let mut b = vec![ESC, b'@', ESC, b't', cfg.codepage.select()];
    let title = format!("Z {}", z.number);
    for line in z_text(z, head, lang, cfg.columns()) {
        if line.trim() == title {
            b.extend([ESC, b'a', 1, ESC, b'E', 1, GS, b'!', 0x11]);
            b.extend(encode_text_in(cfg.codepage, line.trim()));
            b.push(b'\n');
            b.extend([GS, b'!', 0x00, ESC, b'E', 0, ESC, b'a', 0]);
        } else {
            b.extend(encode_text_in(cfg.codepage, &line));
            b.push(b'\n');
        }
    }
    if cfg.cut {
        b.extend([b'\n', b'\n', b'\n', GS, b'V', 66, 0]);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderd_protocol::{BilledLine, CheckRef, PaymentFact};

    fn bill(lang: &str, copy: bool) -> BillPrint {
        BillPrint {
            check: CheckRef {
                id: 20_261_207_000_012,
                number: 12,
                day: 20_261_207,
            },
            station: "pass".into(),
            table_label: Some("T4".into()),
            waiter: "ana".into(),
            covers: 2,
            lang: lang.into(),
            copy,
            lines: vec![
                BilledLine {
                    item_id: "tave_kosi".into(),
                    name: "Tavë kosi".into(),
                    quantity: 2,
                    voided: 0,
                    gross: 2200,
                    discount: 0,
                    rate_bp: 2000,
                },
                BilledLine {
                    item_id: "lemonade".into(),
                    name: "Lemonade".into(),
                    quantity: 1,
                    voided: 0,
                    gross: 300,
                    discount: 300,
                    rate_bp: 1000,
                },
            ],
            check_discount: 0,
            subtotal: 2500,
            total: 2200,
            vat: vec![VatLine {
                rate_bp: 2000,
                gross: 2200,
                vat: 367,
            }],
            payments: vec![PaymentFact {
                id: 1,
                method: "cash".into(),
                amount: 2200,
                tip: 100,
                rounding: 0,
                tendered: Some(3000),
                change: Some(700),
                reference: None,
                actor: "ana".into(),
            }],
            balance: 0,
            actor: "ana".into(),
        }
    }

    fn head() -> BillHeader<'static> {
        BillHeader {
            site_name: "Demo Restaurant",
            address: "Rruga e Durrësit 1, Tiranë",
            tax_id: "L12345678A",
            time: "2026-12-07 21:40",
            currency: "EUR",
            minor_digits: 2,
            fiscal_code: None,
        }
    }

    #[test]
    fn money_has_its_decimal_point() {
        assert_eq!(money(1234, 2), "12.34");
        assert_eq!(money(5, 2), "0.05");
        assert_eq!(money(-250, 2), "-2.50");
        assert_eq!(money(1500, 0), "1500");
    }

    #[test]
    fn the_bill_lists_lines_discounts_vat_and_change() {
        let text = bill_text(&bill("en", false), &head(), 48).join("\n");
        for want in [
            "Demo Restaurant",
            "Tax id L12345678A",
            "Check 20261207-12",
            "Table T4",
            "Guests 2",
            "2x Tavë kosi",
            "22.00",
            "Discount",
            "-3.00",
            "TOTAL EUR",
            "VAT 20% (22.00)",
            "3.67",
            "Paid cash",
            "Change",
            "7.00",
            "NOT A FISCAL RECEIPT",
        ] {
            assert!(text.contains(want), "{want:?} missing in\n{text}");
        }
        assert!(!text.contains("COPY"));
    }

    #[test]
    fn albanian_bills_print_their_own_words_and_characters() {
        let b = bill("sq", true);
        let text = bill_text(&b, &head(), 32).join("\n");
        assert!(text.contains("KOPJE"), "{text}");
        assert!(text.contains("NUK ËSHTË KUPON FISKAL"), "{text}");
        assert!(text.contains("Kusuri"), "{text}");
        let bytes = render_bill(
            &b,
            &head(),
            &EscPosConfig {
                width: super::super::PaperWidth::Mm58,
                cut: true,
                ..EscPosConfig::default()
            },
        );
        // ë is 0x89 in PC858, never raw UTF-8.
        assert!(bytes.windows(2).all(|w| w != [0xc3, 0xab]));
        assert!(bytes.contains(&0x89));
        assert!(bytes.ends_with(&[GS, b'V', 66, 0]));
    }
}
