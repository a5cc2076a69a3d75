//! The collector's settings (`/etc/orderd/collector.toml`): where it listens, its database,
//! the head office's report token and the batch limits. Secrets are given inline, in a file or
//! in the environment, and never printed.

use orderd_plugins::messaging::Secret;
use serde::{Deserialize, Serialize};

/// `collector.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address (put TLS in front of it; see the README).
    pub listen: String,
    /// PostgreSQL connection string, e.g. `host=/var/run/postgresql dbname=orderd`.
    pub database: Secret,
    /// Bearer token of the head office for the chain-wide reports.
    pub reports_token: Secret,
    /// Largest accepted request body, bytes.
    pub max_batch_bytes: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Database connections.
    pub pool_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8090".into(),
            database: Secret {
                value: "host=/var/run/postgresql dbname=orderd".into(),
                ..Secret::default()
            },
            reports_token: Secret::default(),
            max_batch_bytes: 8 * 1024 * 1024,
            max_batch_events: 10_000,
            pool_size: 16,
        }
    }
}

impl Config {
    /// Reads a config file (a missing file gives the defaults).
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }

    /// The database connection string.
    pub fn database_url(&self) -> anyhow::Result<String> {
        self.database
            .load()
            .map_err(|e| anyhow::anyhow!("database: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("database: no connection string"))
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn the_shipped_config_is_the_defaults() {
        let shipped: Config = toml::from_str(include_str!("../../config/collector.toml")).unwrap();
        assert_eq!(
            serde_json::to_value(&shipped).unwrap(),
            serde_json::to_value(Config::default()).unwrap()
        );
    }
}
