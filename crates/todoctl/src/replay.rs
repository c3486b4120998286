use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::Output;

#[derive(Args)]
pub struct ReplayArgs {
    /// Postgres URL of the query service's database.
    #[arg(long, env = "QUERY_DATABASE_URL")]
    database_url: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "QUERY_KAFKA_BROKERS")]
    brokers: String,
    /// After reaching the high watermarks, stop once the topic was quiet this long.
    #[arg(long, default_value_t = 1000)]
    idle_ms: u64,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

pub async fn run(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&a.database_url)
        .await
        .context("connecting to Postgres (--database-url)")?;
    let kafka = bus::KafkaSettings::new(a.brokers.clone(), "todoctl-replay");
    let bar = ProgressBar::new(0);
    if a.output == Output::Table {
        bar.set_style(
            ProgressStyle::with_template("{spinner} replaying todo-events [{bar:40}] {pos}/{len} records ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let report = query_service::replay::replay(
        &pool,
        &kafka,
        std::time::Duration::from_millis(a.idle_ms),
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await?;
    bar.finish_and_clear();
    match a.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => {
            println!("replay finished and swapped in");
            println!("  records read            {}", report.records);
            println!("  events applied          {}", report.applied);
            println!("  duplicates skipped      {}", report.duplicates);
            println!("  invalid records skipped {}", report.skipped_invalid);
            println!("  caught up from live     {}", report.caught_up_from_live);
        }
    }
    Ok(ExitCode::SUCCESS)
}
