//! `todoctl slo …`: a thin shell over `slo::cli`, where the logic and its
//! tests live. Uses only `slo`, `clap`, `anyhow` and std.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum SloCommand {
    /// Compile slo/*.yaml into alert rules, Alertmanager config, promtool tests, dashboards and k8s manifests.
    Generate {
        /// Directory holding the SLO specs.
        #[arg(long, default_value = "slo")]
        specs: PathBuf,
        /// Repository root to write alerts/, dashboards/ and k8s/monitoring/ under.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Write nothing; exit 1 if any generated file is out of date.
        #[arg(long)]
        check: bool,
        /// Base URL of every alert's runbook_url (`<base>/docs/runbook.md#<alert>`);
        /// default: the workspace repository + `/blob/main`, which the committed files use.
        #[arg(long)]
        runbook_base: Option<String>,
    },
    /// Validate specs; prints one `file:line:col: field: message (fix: …)` line per problem, exit 1 on errors.
    Validate {
        #[arg(long, default_value = "slo")]
        specs: PathBuf,
        /// Validate these files instead of the whole specs directory.
        files: Vec<PathBuf>,
    },
    /// Explain an SLO's budget and alert tiers in plain words (all SLOs without a name).
    Explain {
        name: Option<String>,
        #[arg(long, default_value = "slo")]
        specs: PathBuf,
    },
    /// Import OpenSLO v1 (SLO/SLI/Service), Sloth (`prometheus/v1` or the
    /// `PrometheusServiceLevel` CRD) or Pyrra (`ServiceLevelObjective`) into
    /// slo/<service>.yaml; the format is recognised from the file. Notes on
    /// what was not kept go to stderr.
    Import {
        file: PathBuf,
        #[arg(long, default_value = "slo")]
        out: PathBuf,
    },
    /// Print every SLO as OpenSLO v1 documents (our spec rides along in an
    /// annotation, so importing the output gives the same specs back).
    Export {
        /// Output format; only `openslo`.
        #[arg(long, value_enum, default_value = "openslo")]
        format: ExportFormat,
        #[arg(long, default_value = "slo")]
        specs: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Openslo,
}

pub fn run(cmd: SloCommand) -> anyhow::Result<ExitCode> {
    let outcome = match &cmd {
        SloCommand::Generate {
            specs,
            out,
            check,
            runbook_base,
        } => {
            let mut opts = slo::Options::default();
            if let Some(base) = runbook_base {
                opts.runbook_base = base.clone();
            }
            slo::cli::generate(specs, out, *check, &opts)
        }
        SloCommand::Validate { specs, files } => slo::cli::validate(specs, files),
        SloCommand::Explain { name, specs } => slo::cli::explain(specs, name.as_deref()),
        SloCommand::Import { file, out } => slo::cli::import(file, out),
        SloCommand::Export {
            format: ExportFormat::Openslo,
            specs,
        } => slo::cli::export(specs),
    };
    std::io::stdout().write_all(outcome.stdout.as_bytes())?;
    std::io::stderr().write_all(outcome.stderr.as_bytes())?;
    Ok(if outcome.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
