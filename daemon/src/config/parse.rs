//! Reading the file: TOML into [`RawConfig`], every wrong type and unknown key reported with its
//! key and line, and the files the daemon will read named for the checks.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The wrong types in one section: `[name]` as a whole, then key by key to name each.
fn type_errors<T: serde::de::DeserializeOwned>(
    name: &str,
    value: &toml::Value,
) -> Vec<(String, String)> {
    let Err(whole) = value.clone().try_into::<T>() else {
        return Vec::new();
    };
    let Some(table) = value.as_table() else {
        return vec![(
            name.to_owned(),
            format!("must be a table: {}", whole.message()),
        )];
    };
    let mut out = Vec::new();
    for (key, v) in table {
        let mut one = toml::Table::new();
        one.insert(key.clone(), v.clone());
        if let Err(e) = toml::Value::Table(one).try_into::<T>() {
            out.push((format!("{name}.{key}"), e.message().trim().to_owned()));
        }
    }
    if out.is_empty() {
        out.push((name.to_owned(), whole.message().trim().to_owned()));
    }
    out
}

/// Removes a dotted key (`section.key`) from a parsed table.
fn remove_key(table: &mut toml::Table, dotted: &str) {
    match dotted.split_once('.') {
        Some((section, key)) => {
            if let Some(toml::Value::Table(t)) = table.get_mut(section) {
                t.remove(key);
            }
        }
        None => {
            table.remove(dotted);
        }
    }
}

/// The line (from 1) of a dotted key in TOML text: the `key =` line inside its `[section]`, or
/// the section's header for a whole section.
pub fn line_of(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = match dotted.rsplit_once('.') {
        Some((s, k)) => (s, Some(k)),
        None => (dotted, None),
    };
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(header) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            in_section = header.trim() == section;
            if in_section && key.is_none() {
                return Some(i + 1);
            }
            continue;
        }
        if let Some(k) = key
            && in_section
            && t.split('=').next().is_some_and(|lhs| lhs.trim() == k)
            && t.contains('=')
        {
            return Some(i + 1);
        }
    }
    None
}

impl RawConfig {
    /// Parses TOML text; any problem (syntax, a wrong type, an unknown key) is an error.
    pub fn parse(text: &str) -> Result<Self, Problems> {
        let (raw, problems) = Self::parse_lenient(text)?;
        if problems.is_empty() {
            Ok(raw)
        } else {
            Err(Problems(problems))
        }
    }

    /// Parses TOML text and reports every problem at once: a value of the wrong type and an
    /// unknown key are each a problem with its key and line, and the rest of the file still
    /// counts (a wrong value takes its default, so later checks see the others). Only text that
    /// is not TOML at all stops at once (with its line).
    pub fn parse_lenient(text: &str) -> Result<(Self, Vec<Problem>), Problems> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            Problems(vec![Problem {
                key: "(file)".into(),
                message: format!("not valid TOML: {e}"),
                line: None,
            }])
        })?;
        let mut problems = Vec::new();
        // Wrong types, section by section and then key by key, so each is named; the bad key
        // is taken out so that its default applies and nothing else is lost.
        macro_rules! section {
            ($name:literal, $ty:ty) => {
                if let Some(value) = table.get($name) {
                    for (key, message) in type_errors::<$ty>($name, value) {
                        problems.push(Problem {
                            line: line_of(text, &key),
                            key: key.clone(),
                            message,
                        });
                        remove_key(&mut table, &key);
                    }
                }
            };
        }
        section!("site", SiteConfig);
        section!("store", StoreConfig);
        section!("http", HttpConfig);
        section!("limits", LimitsConfig);
        section!("orders", OrdersConfig);
        section!("auth", AuthConfig);
        section!("log", LogConfig);
        section!("mqtt", MqttConfig);
        section!("kitchen", KitchenConfig);
        section!("otp", OtpConfig);
        section!("messaging", MessagingConfig);
        section!("whatsapp", orderd_plugins::whatsapp::Config);
        section!("telegram", orderd_plugins::telegram::Config);
        section!("upload", orderd_plugins::collector::Config);
        let mut unknown = Vec::new();
        let raw: Self = serde_ignored::deserialize(toml::Value::Table(table), |path| {
            unknown.push(path.to_string());
        })
        .map_err(|e| {
            Problems(vec![Problem {
                key: "(file)".into(),
                message: format!("{e}"),
                line: None,
            }])
        })?;
        for key in unknown {
            problems.push(Problem {
                line: line_of(text, &key),
                key,
                message: "unknown key; check its spelling against config/orderd.toml".into(),
            });
        }
        Ok((raw, problems))
    }

    /// Reads a file (every problem reported as by [`RawConfig::parse`]), or the embedded
    /// defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, Problems> {
        let (raw, problems, _) = Self::load_lenient(path)?;
        if problems.is_empty() {
            Ok(raw)
        } else {
            Err(Problems(problems))
        }
    }

    /// [`RawConfig::parse_lenient`] of a file, with its text (for the lines of later problems).
    pub fn load_lenient(path: Option<&Path>) -> Result<(Self, Vec<Problem>, String), Problems> {
        let Some(path) = path else {
            return Ok((Self::default(), Vec::new(), String::new()));
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem {
                key: "(file)".into(),
                message: format!("cannot read {}: {e}", path.display()),
                line: None,
            }])
        })?;
        let (raw, problems) = Self::parse_lenient(&text)?;
        Ok((raw, problems, text))
    }

    /// Every file the daemon reads at start, with its key: secrets, certificates and keys.
    pub(super) fn files_the_service_reads(&self) -> Vec<(&'static str, &Path)> {
        let files = [
            ("http.metrics_token", &self.http.metrics_token.file),
            ("whatsapp.access_token", &self.whatsapp.access_token.file),
            ("telegram.token", &self.telegram.token.file),
            ("upload.token", &self.upload.token.file),
            ("http.tls.cert_file", &self.http.tls.cert_file),
            ("http.tls.key_file", &self.http.tls.key_file),
            ("mqtt.tls_cert_file", &self.mqtt.tls_cert_file),
            ("mqtt.tls_key_file", &self.mqtt.tls_key_file),
            ("mqtt.hub_password_file", &self.mqtt.hub_password_file),
        ];
        files
            .into_iter()
            .filter(|(_, p)| !p.as_os_str().is_empty())
            .map(|(k, p)| (k, p.as_path()))
            .collect()
    }
}
