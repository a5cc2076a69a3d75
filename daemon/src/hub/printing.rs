//! Which printers print a station's tickets (and the bill station's guest checks), and the
//! bytes they print: shared by the hub (new
//! and cancelled tickets) and the reprint endpoint, so both choose and render alike. No I/O.

use jiff::tz::TimeZone;
use orderd_plugins::escpos::{EscPosConfig, PaperWidth, TicketDoc};
use orderd_protocol::{Order, PrintCopy, TicketLine};

use crate::config::KitchenSettings;
use crate::domain::devices::{Device, DeviceKind};

/// The printers (main or backup) that serve `station`.
pub fn printers<'a>(
    devices: impl IntoIterator<Item = &'a Device>,
    station: &str,
    backup: bool,
) -> Vec<&'a Device> {
    devices
        .into_iter()
        .filter(|d| {
            d.kind == DeviceKind::Printer
                && d.backup == backup
                && d.stations.iter().any(|s| s == station)
        })
        .collect()
}

/// The printers a station's tickets go to: its main printers, or its backups if it has none.
pub fn ticket_printers<'a>(
    devices: impl IntoIterator<Item = &'a Device> + Clone,
    station: &str,
) -> Vec<String> {
    let mut out = printers(devices.clone(), station, false);
    if out.is_empty() {
        out = printers(devices, station, true);
    }
    out.into_iter().map(|d| d.id.clone()).collect()
}

/// Paper width from `[kitchen] paper_width_mm` (validated to 58 or 80).
pub fn paper(cfg: &KitchenSettings) -> PaperWidth {
    if cfg.paper_width_mm == 58 {
        PaperWidth::Mm58
    } else {
        PaperWidth::Mm80
    }
}

/// How to render for a printer: the kitchen's paper width, and the printer's own code page and
/// columns when it has them (`None`: the defaults, PC858 and the paper's columns).
pub fn printer_config(cfg: &KitchenSettings, device: Option<&Device>) -> EscPosConfig {
    EscPosConfig {
        width: paper(cfg),
        cut: true,
        codepage: device
            .and_then(|d| d.codepage.as_deref())
            .and_then(orderd_plugins::escpos::CodePage::parse)
            .unwrap_or_default(),
        columns: device.and_then(|d| d.columns).map(usize::from),
    }
}

/// Printers grouped by how they render (printers alike get the same bytes, rendered once).
pub fn by_config(
    cfg: &KitchenSettings,
    devices: &std::collections::BTreeMap<String, Device>,
    printers: Vec<String>,
) -> Vec<(EscPosConfig, Vec<String>)> {
    let mut groups: Vec<(EscPosConfig, Vec<String>)> = Vec::new();
    for p in printers {
        let c = printer_config(cfg, devices.get(&p));
        match groups.iter_mut().find(|(g, _)| *g == c) {
            Some((_, ps)) => ps.push(p),
            None => groups.push((c, vec![p])),
        }
    }
    groups
}

/// `HH:MM` local time of a ms timestamp.
pub fn local_time(tz: &TimeZone, ms: u64) -> String {
    jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(0))
        .map(|ts| ts.to_zoned(tz.clone()).strftime("%H:%M").to_string())
        .unwrap_or_default()
}

/// What kind of slip a ticket is printed as.
#[derive(Debug, Clone, Copy)]
pub struct Slip<'a> {
    /// The note under the lines.
    pub note: Option<&'a str>,
    /// The order's allergy note, above the lines.
    pub allergy: Option<&'a str>,
    /// Original or reprint.
    pub copy: PrintCopy,
    /// `CANCELLED` or `CHANGED` for those slips.
    pub banner: Option<&'a str>,
}

/// One station's ticket of `order` as ESC/POS bytes.
pub fn render(
    order: &Order,
    station: &str,
    lines: &[TicketLine],
    slip: Slip<'_>,
    cfg: &EscPosConfig,
    tz: &TimeZone,
) -> Vec<u8> {
    let Slip {
        note,
        allergy,
        copy,
        banner,
    } = slip;
    let short = crate::domain::orders::short_number(order);
    let time = local_time(tz, order.created_at);
    let doc = TicketDoc {
        short: &short,
        number: &order.number,
        station,
        order_type: order.order_type,
        table: order.table_label.as_deref(),
        time: &time,
        lines,
        note,
        allergy,
        copy,
        banner,
    };
    orderd_plugins::escpos::render(&doc, cfg)
}

/// `YYYY-MM-DD HH:MM` local time of a ms timestamp (bills and Z slips).
fn local_date_time(tz: &TimeZone, ms: u64) -> String {
    jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(0))
        .map(|ts| {
            ts.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// The restaurant's part of a bill or Z slip, from the settings.
fn office_header<'a>(
    settings: &'a crate::config::Settings,
    time: &'a str,
    fiscal_code: Option<&'a str>,
) -> orderd_plugins::escpos::BillHeader<'a> {
    let b = &settings.billing;
    orderd_plugins::escpos::BillHeader {
        site_name: &settings.site.name,
        address: &b.address,
        tax_id: &b.tax_id,
        time,
        currency: &settings.site.currency,
        minor_digits: b.minor_digits,
        fiscal_code,
    }
}

/// A guest check as ESC/POS bytes, for the bill station's printers.
pub fn render_bill(
    bill: &orderd_protocol::BillPrint,
    settings: &crate::config::Settings,
    cfg: &EscPosConfig,
    at_ms: u64,
    fiscal: &dyn orderd_plugins::fiscal::Fiscal,
) -> Vec<u8> {
    use orderd_plugins::fiscal::Registration;
    let fiscal_code = match fiscal.register(bill) {
        Registration::NotFiscal => None,
        Registration::Registered { code, .. } => Some(code),
        Registration::Deferred { note } => Some(note),
    };
    let time = local_date_time(&settings.time_zone, at_ms);
    let head = office_header(settings, &time, fiscal_code.as_deref());
    orderd_plugins::escpos::render_bill(bill, &head, cfg)
}

/// A Z report's slip as ESC/POS bytes, in the site's language.
pub fn render_z(
    z: &orderd_protocol::ZReport,
    settings: &crate::config::Settings,
    cfg: &EscPosConfig,
) -> Vec<u8> {
    let time = local_date_time(&settings.time_zone, z.closed_at);
    let head = office_header(settings, &time, None);
    orderd_plugins::escpos::render_z(z, &head, &settings.site.default_language, cfg)
}

/// A printer's test slip: the box's address, the printer's id, stations and address, the paper
/// and code page, and the characters that must print right (ë ç Ë Ç €).
pub fn render_test(
    device: &crate::domain::devices::Device,
    box_url: &str,
    site_name: &str,
    cfg: &EscPosConfig,
) -> Vec<u8> {
    use orderd_plugins::escpos::encode_text_in;
    let mut b = vec![0x1b, b'@', 0x1b, b't', cfg.codepage.select()];
    let mut line = |t: &str| {
        b.extend(encode_text_in(cfg.codepage, t));
        b.push(b'\n');
    };
    line("*** orderd test print ***");
    line(site_name);
    line(&format!("Box: {box_url}"));
    line(&format!("Printer: {}", device.id));
    line(&format!("Stations: {}", device.stations.join(", ")));
    line(&format!(
        "Connection: {}",
        match (&device.tcp, &device.usb) {
            (Some(a), _) => format!("network {a}"),
            (None, Some(p)) => format!("USB {p}"),
            (None, None) => "MQTT".to_owned(),
        }
    ));
    line(&format!(
        "Paper: {} mm, {} columns; code page {}",
        if cfg.width == PaperWidth::Mm58 {
            58
        } else {
            80
        },
        cfg.columns(),
        cfg.codepage.as_str().to_uppercase()
    ));
    line("Albanian: ë ç Ë Ç  euro: €");
    b.extend([b'\n', b'\n', b'\n', 0x1d, b'V', 66, 0]);
    b
}
