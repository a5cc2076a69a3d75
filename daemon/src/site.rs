//! The restaurant's own settings, kept by the box: `site.toml` in the data directory, written
//! from the admin page's set-up and laid over the configuration file at start.
//!
//! The configuration file belongs to the installer (`/etc/orderd/orderd.toml`, read-only to the
//! service); what the owner types in the page (name, address and tax id on the bill, currency,
//! time zone, languages) lives here and wins over it. It takes effect at the next start: the
//! page restarts the box to apply it (docs/pages.md, "The owner's set-up").

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Problem, RawConfig};

/// The file's name in the data directory.
pub const FILE: &str = "site.toml";

/// What the owner set in the page. A missing value keeps the configuration file's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteFile {
    /// `[site]` values.
    pub site: SiteValues,
    /// `[billing]` values.
    pub billing: BillingValues,
    /// Where the owner's guided set-up stands.
    pub setup: Setup,
}

/// The `[site]` keys the page may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteValues {
    /// `site.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `site.currency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// `site.time_zone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// `site.default_language`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_language: Option<String>,
    /// `site.languages`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
}

/// The `[billing]` keys the page may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingValues {
    /// `billing.address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `billing.tax_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
    /// `billing.minor_digits`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor_digits: Option<u8>,
}

/// The guided set-up's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Setup {
    /// The owner finished or skipped the set-up; the admin page stops opening on it.
    pub finished: bool,
}

/// The file's path in `data_dir`.
#[must_use]
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Reads the file; a missing file is an empty one.
///
/// # Errors
/// The file cannot be read or is not a valid `site.toml`, as a problem naming the file.
pub fn read(data_dir: &Path) -> Result<SiteFile, Problem> {
    let path = path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SiteFile::default()),
        Err(e) => {
            return Err(Problem {
                key: path.display().to_string(),
                message: format!("cannot be read: {e}"),
                line: None,
            });
        }
    };
    toml::from_str(&text).map_err(|e| Problem {
        key: path.display().to_string(),
        message: format!(
            "{} (written by the admin page; fix it or remove the file)",
            e.message()
        ),
        line: e
            .span()
            .map(|s| text[..s.start].bytes().filter(|b| *b == b'\n').count() + 1),
    })
}

impl SiteFile {
    /// Lays the owner's values over `raw` (they win over the configuration file).
    pub fn apply(&self, raw: &mut RawConfig) {
        let (s, b) = (&self.site, &self.billing);
        let set = |to: &mut String, from: &Option<String>| {
            if let Some(v) = from {
                v.clone_into(to);
            }
        };
        set(&mut raw.site.name, &s.name);
        set(&mut raw.site.currency, &s.currency);
        set(&mut raw.site.time_zone, &s.time_zone);
        set(&mut raw.site.default_language, &s.default_language);
        if let Some(l) = &s.languages {
            l.clone_into(&mut raw.site.languages);
        }
        set(&mut raw.billing.address, &b.address);
        set(&mut raw.billing.tax_id, &b.tax_id);
        if let Some(d) = b.minor_digits {
            raw.billing.minor_digits = d;
        }
    }

    /// The dotted keys this file sets, for the start-up log and `check-config`.
    #[must_use]
    pub fn keys(&self) -> Vec<&'static str> {
        let (s, b) = (&self.site, &self.billing);
        [
            ("site.name", s.name.is_some()),
            ("site.currency", s.currency.is_some()),
            ("site.time_zone", s.time_zone.is_some()),
            ("site.default_language", s.default_language.is_some()),
            ("site.languages", s.languages.is_some()),
            ("billing.address", b.address.is_some()),
            ("billing.tax_id", b.tax_id.is_some()),
            ("billing.minor_digits", b.minor_digits.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }
}

/// Writes the file durably: a temporary file, synced, renamed over the old one, and the
/// directory synced, so a power cut leaves either the old file or the new one.
///
/// # Errors
/// Writing, syncing or renaming failed.
pub fn write(data_dir: &Path, file: &SiteFile) -> std::io::Result<()> {
    let text = format!(
        "# The restaurant's settings, written by orderd's admin page (Admin → Restaurant).\n\
         # They win over the configuration file and take effect when orderd starts.\n{}",
        toml::to_string(file).map_err(std::io::Error::other)?
    );
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    let mut out = crate::files::create(&tmp)?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&tmp, path(data_dir))?;
    crate::files::sync_dir(data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_and_wins_over_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), SiteFile::default());
        let mut file = SiteFile::default();
        file.site.name = Some("Te Ura".into());
        file.site.languages = Some(vec!["sq".into()]);
        file.site.default_language = Some("sq".into());
        file.billing.tax_id = Some("L12345678A".into());
        file.billing.minor_digits = Some(0);
        file.setup.finished = true;
        write(dir.path(), &file).unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back, file);
        let mut raw = RawConfig::default();
        back.apply(&mut raw);
        assert_eq!(raw.site.name, "Te Ura");
        assert_eq!(raw.site.currency, "EUR", "a value not set keeps the file's");
        assert_eq!(raw.billing.minor_digits, 0);
        assert_eq!(
            back.keys(),
            [
                "site.name",
                "site.default_language",
                "site.languages",
                "billing.tax_id",
                "billing.minor_digits"
            ]
        );
        let settings = raw.validate().unwrap();
        assert_eq!(settings.site.languages, ["sq"]);
    }

    #[test]
    fn a_broken_file_is_a_problem_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "[site]\nname = \"A\"\ncolour = \"red\"\n").unwrap();
        let p = read(dir.path()).unwrap_err();
        assert!(p.key.ends_with("site.toml"), "{p:?}");
        assert_eq!(p.line, Some(3), "{p:?}");
        assert!(p.message.contains("colour"), "{p:?}");
    }
}
