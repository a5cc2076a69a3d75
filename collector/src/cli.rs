//! The command line: `run`, `migrate`, `site add|list|revoke`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::http::App;
use crate::{db, sites};

#[derive(Parser)]
#[command(
    name = "orderd-collector",
    version,
    about = "The orderd chain collector"
)]
struct Cli {
    /// Config file.
    #[arg(long, default_value = "/etc/orderd/collector.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve.
    Run {
        /// Listen address (overrides the config).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply pending schema migrations and exit.
    Migrate,
    /// Manage the sites that may upload.
    #[command(subcommand)]
    Site(SiteCommand),
}

#[derive(Subcommand)]
enum SiteCommand {
    /// Add a site (or re-issue a revoked one) and print its token once.
    Add {
        /// The box's `[site] id`.
        id: String,
        /// A name for people.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List sites.
    List,
    /// Revoke a site's token.
    Revoke {
        /// Site id.
        id: String,
    },
}

/// Runs the command line; the exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The service logs its work; one-shot commands print their result and only warnings.
    let level = if matches!(cli.command, Command::Run { .. }) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orderd-collector: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderd-collector: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = Config::load(&cli.config)?;
    let pool = db::pool(&cfg.database_url()?, cfg.pool_size)?;
    match cli.command {
        Command::Migrate => {
            let n = db::migrate(&pool).await?;
            println!("{n} migration(s) applied");
        }
        Command::Site(SiteCommand::Add { id, name }) => {
            db::migrate(&pool).await?;
            let token = sites::add(&pool, &id, &name).await?;
            println!(
                "site {id} added; its upload token (shown once, put it in the box's [upload] token):"
            );
            println!("{token}");
        }
        Command::Site(SiteCommand::List) => {
            for s in sites::list(&pool).await? {
                println!(
                    "{}\t{}\tacked_seq={}\t{}",
                    s.site_id,
                    if s.revoked { "revoked" } else { "active" },
                    s.acked_seq,
                    s.name
                );
            }
        }
        Command::Site(SiteCommand::Revoke { id }) => {
            sites::revoke(&pool, &id).await?;
            println!("site {id} revoked");
        }
        Command::Run { listen } => {
            let n = db::migrate(&pool).await?;
            tracing::info!(migrations = n, "database ready");
            let reports_token = cfg
                .reports_token
                .load()
                .map_err(|e| anyhow::anyhow!("reports_token: {e}"))?;
            let listen = listen.unwrap_or_else(|| cfg.listen.clone());
            let projector = Arc::new(crate::project::Projector::new(pool.clone()));
            tokio::spawn({
                let projector = Arc::clone(&projector);
                async move { projector.run().await }
            });
            let app = Arc::new(App {
                pool,
                projector,
                cfg,
                reports_token,
            });
            // systemd stops the service with SIGTERM; a terminal with ctrl-c. Both handlers are
            // installed before the address is announced, so a signal sent as soon as the
            // collector says it listens stops it gracefully instead of killing it.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let mut ctrl_c =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            let addr = listener.local_addr()?;
            println!("collector listening on http://{addr}");
            tracing::info!(%addr, "collector listening");
            crate::http::run(listener, app, async move {
                tokio::select! {
                    _ = ctrl_c.recv() => {}
                    _ = term.recv() => {}
                }
                tracing::info!("collector stopping");
            })
            .await?;
        }
    }
    Ok(())
}
