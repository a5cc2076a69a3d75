//! ESC/POS settings: paper width and code page.

use serde::{Deserialize, Serialize};

/// Paper roll width.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaperWidth {
    /// 58 mm: 32 columns of font A.
    Mm58,
    /// 80 mm: 48 columns of font A.
    #[default]
    Mm80,
}

impl PaperWidth {
    /// Characters per line in font A.
    pub const fn columns(self) -> usize {
        match self {
            Self::Mm58 => 32,
            Self::Mm80 => 48,
        }
    }
}

/// How to render tickets for one printer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscPosConfig {
    /// Paper width.
    #[serde(default)]
    pub width: PaperWidth,
    /// Cut the paper after each ticket (printers without a cutter ignore it).
    #[serde(default = "yes")]
    pub cut: bool,
    /// The printer's code page.
    #[serde(default)]
    pub codepage: CodePage,
    /// Characters per line, when the printer's differ from the paper width's (e.g. 42 on an
    /// 80 mm printer with a wider font).
    #[serde(default)]
    pub columns: Option<usize>,
}

impl EscPosConfig {
    /// Characters per line.
    pub fn columns(&self) -> usize {
        self.columns.unwrap_or_else(|| self.width.columns())
    }
}

fn yes() -> bool {
    true
}

/// A printer's code page: how characters past ASCII are sent to it, and the `ESC t n` that
/// selects it (Epson numbering, which most ESC/POS printers follow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodePage {
    /// PC437 (USA, standard Europe): ç and ë but not Ë, and no euro sign.
    Pc437,
    /// PC850 (Multilingual Latin 1): every Albanian letter, no euro sign.
    Pc850,
    /// PC858: PC850 with the euro sign. The default.
    #[default]
    Pc858,
    /// WPC1252 (Windows Latin 1): every Albanian letter and the euro sign.
    Wpc1252,
}

impl CodePage {
    /// Every code page, by name.
    pub const ALL: [Self; 4] = [Self::Pc437, Self::Pc850, Self::Pc858, Self::Wpc1252];

    /// Its name in configuration and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pc437 => "pc437",
            Self::Pc850 => "pc850",
            Self::Pc858 => "pc858",
            Self::Wpc1252 => "wpc1252",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The `n` of `ESC t n` that selects it.
    pub const fn select(self) -> u8 {
        match self {
            Self::Pc437 => 0,
            Self::Pc850 => 2,
            Self::Pc858 => CP858_SELECT,
            Self::Wpc1252 => 16,
        }
    }

    /// Its characters for bytes 0x80–0xFF (U+FFFD where the page has none).
    pub(crate) const fn high(self) -> &'static str {
        match self {
            Self::Pc437 => CP437_HIGH,
            Self::Pc850 => CP850_HIGH,
            Self::Pc858 => CP858_HIGH,
            Self::Wpc1252 => WPC1252_HIGH,
        }
    }
}

/// Code page PC437, bytes 0x80–0xFF.
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

/// Code page PC850, bytes 0x80–0xFF (PC858 without the euro sign: 0xD5 is a dotless i).
const CP850_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜø£Ø×ƒáíóúñÑªº¿®¬½¼¡«»░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐└┴┬├─┼ãÃ╚╔╩╦╠═╬¤ðÐÊËÈıÍÎÏ┘┌█▄¦Ì▀ÓßÔÒõÕµþÞÚÛÙýÝ¯´\u{ad}±‗¾¶§÷¸°¨·¹³²■\u{a0}";

/// Windows-1252, bytes 0x80–0xFF (five bytes unused).
const WPC1252_HIGH: &str = "€\u{fffd}‚ƒ„…†‡ˆ‰Š‹Œ\u{fffd}Ž\u{fffd}\u{fffd}‘’“”•–—˜™š›œ\u{fffd}žŸ\u{a0}¡¢£¤¥¦§¨©ª«¬\u{ad}®¯°±²³´µ¶·¸¹º»¼½¾¿ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõö÷øùúûüýþÿ";

/// Code page PC858 (PC850, Multilingual Latin 1, with the euro sign at 0xD5): bytes 0x80–0xFF.
/// It holds every letter of Albanian (ë, ç, Ë, Ç), the euro sign, and the other Latin-script
/// letters a menu is likely to use. (PC850 itself has no €: it printed as `?`.)
pub(crate) const CP858_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜø£Ø×ƒáíóúñÑªº¿®¬½¼¡«»░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐└┴┬├─┼ãÃ╚╔╩╦╠═╬¤ðÐÊËÈ€ÍÎÏ┘┌█▄¦Ì▀ÓßÔÒõÕµþÞÚÛÙýÝ¯´\u{ad}±‗¾¶§÷¸°¨·¹³²■\u{a0}";

/// `ESC t n` value that selects PC858 on Epson-compatible printers.
pub(crate) const CP858_SELECT: u8 = 19;
