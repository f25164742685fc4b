//! `scribe`: settings -> telemetry -> build -> run until a shutdown signal.

use anyhow::Context;
use clap::Parser;
use scribe::config::{Cli, Command, Settings, TokenSource};
use scribe::startup::{Application, shutdown_signal};
use scribe::store::{PoolSize, Store};
use scribe::telemetry;
use scribe_sim::Simulators;
use secrecy::ExposeSecret;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Cli::parse().into_command();
    // Kept to the end: dropping it sends the spans still buffered.
    let _telemetry = match &command {
        // The demo's report and progress bars are its output: warnings only.
        Command::Demo(_) => telemetry::init_with("warn", telemetry::LogFormat::Text)?,
        Command::Serve(args) => telemetry::init_with(telemetry::DEFAULT_FILTER, args.log_format)?,
        _ => telemetry::init()?,
    };
    match command {
        Command::Serve(args) => {
            let (mut settings, token_source) = Settings::from_args(*args)?;
            // `--simulate`: the simulators run beside the server, on ports
            // of their own, until it stops; the server is told where.
            let simulators = if settings.simulate {
                let simulators = Simulators::start().await?;
                simulators.configure(&mut settings);
                Some(simulators)
            } else {
                None
            };
            if token_source == TokenSource::Generated {
                println!(
                    "SCRIBE_API_TOKEN is not set; API token for this run: {}",
                    settings.api_token.expose_secret()
                );
            }
            let app = Application::build(settings).await?;
            println!("scribe listening on http://{}", app.local_addr());
            let served = app.run_until_stopped(shutdown_signal()).await;
            drop(simulators);
            served
        }
        Command::Demo(args) => scribe_sim::demo::run(args).await,
        Command::Migrate(args) => {
            let url = args.database_url.expose_secret();
            let store = Store::connect(url, PoolSize(1))
                .await
                .context("opening the database")?;
            store.migrate().await.context("migrating the database")?;
            store.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::RotatePageSecret(args) => {
            let url = args.database_url.expose_secret();
            let store = Store::connect(url, PoolSize(1))
                .await
                .context("opening the database")?;
            store.migrate().await.context("migrating the database")?;
            store
                .rotate_page_secret()
                .await
                .context("replacing the page key")?;
            store.close().await;
            println!(
                "page key replaced: restart every instance; meeting page links issued before no longer work"
            );
            Ok(())
        }
    }
}
