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
}

fn yes() -> bool {
    true
}

/// Code page PC858 (PC850, Multilingual Latin 1, with the euro sign at 0xD5): bytes 0x80–0xFF.
/// It holds every letter of Albanian (ë, ç, Ë, Ç), the euro sign, and the other Latin-script
/// letters a menu is likely to use. (PC850 itself has no €: it printed as `?`.)
pub(crate) const CP858_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜø£Ø×ƒáíóúñÑªº¿®¬½¼¡«»░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐└┴┬├─┼ãÃ╚╔╩╦╠═╬¤ðÐÊËÈ€ÍÎÏ┘┌█▄¦Ì▀ÓßÔÒõÕµþÞÚÛÙýÝ¯´\u{ad}±‗¾¶§÷¸°¨·¹³²■\u{a0}";

/// `ESC t n` value that selects PC858 on Epson-compatible printers.
pub(crate) const CP858_SELECT: u8 = 19;
