//! The price table behind the cost dashboard (`slo/cost.yaml`): what one
//! replica of each service costs per hour. The dashboard multiplies it by
//! the replicas Prometheus sees, so every number it shows is an estimate.

use std::collections::BTreeMap;
use std::path::Path;

use contracts::metrics::services;
use serde::{Deserialize, Serialize};

use crate::error::{Error, SpecErrors};
use crate::validate::{Ctx, check_yaml, load_side_file};

/// File name of the price table inside the specs directory; the SLO loader skips it.
pub const FILE: &str = "cost.yaml";

/// Services a price may be given for (the `service` label of their metrics).
pub const PRICED_SERVICES: &[&str] = &[
    services::COMMAND,
    services::QUERY,
    services::EVENT_PROCESSOR,
    services::OBSERVER,
];

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CostFile {
    pub cost: Prices,
}

/// Price per replica-hour per service, in one currency.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// ISO 4217 code (`USD`, `EUR`, …).
    pub currency: String,
    /// Service → price of one replica for one hour.
    pub replica_hour: BTreeMap<String, f64>,
}

impl Prices {
    /// Used when no `cost.yaml` exists: every service at 0, so the panels
    /// exist and say plainly that no prices were given.
    pub fn unpriced() -> Self {
        Prices {
            currency: "USD".into(),
            replica_hour: PRICED_SERVICES
                .iter()
                .map(|s| (s.to_string(), 0.0))
                .collect(),
        }
    }

    /// Grafana unit of the currency (`none` for one Grafana has no unit for).
    pub fn unit(&self) -> &'static str {
        match self.currency.as_str() {
            "USD" => "currencyUSD",
            "EUR" => "currencyEUR",
            "GBP" => "currencyGBP",
            "JPY" => "currencyJPY",
            "CHF" => "currencyCHF",
            _ => "none",
        }
    }
}

/// Loads `dir/cost.yaml`, or [`Prices::unpriced`] when there is none.
pub fn load(dir: &Path) -> Result<Prices, Error> {
    load_side_file(dir, FILE, parse_str, Prices::unpriced)
}

/// Parses and validates a price table; errors name file:line:col and field.
pub fn parse_str(file: &str, text: &str) -> Result<Prices, SpecErrors> {
    check_yaml(file, text, |ctx, spec: &CostFile| {
        check(ctx, &spec.cost);
        spec.cost.clone()
    })
}

fn check(ctx: &mut Ctx<'_>, p: &Prices) {
    if p.currency.len() != 3 || !p.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        ctx.err(
            "cost.currency",
            format!("`{}` is not an ISO 4217 currency code", p.currency),
            "use three upper-case letters, e.g. USD or EUR",
        );
    }
    if p.replica_hour.is_empty() {
        ctx.err(
            "cost.replica_hour",
            "no service priced",
            format!(
                "give a price for one or more of {}",
                PRICED_SERVICES.join(", ")
            ),
        );
    }
    for (service, price) in &p.replica_hour {
        let field = format!("cost.replica_hour.{service}");
        if !PRICED_SERVICES.contains(&service.as_str()) {
            ctx.err(
                &field,
                format!("`{service}` is not a service of the platform"),
                format!("use one of {}", PRICED_SERVICES.join(", ")),
            );
        }
        if !price.is_finite() || *price < 0.0 {
            ctx.err(
                &field,
                format!("price {price} is not a non-negative number"),
                "give the price of one replica for one hour, e.g. 0.05",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_table_parses() {
        let p = parse_str(
            "cost.yaml",
            "cost:\n  currency: EUR\n  replica_hour:\n    command-service: 0.05\n    observer: 0\n",
        )
        .expect("valid");
        assert_eq!(p.currency, "EUR");
        assert_eq!(p.unit(), "currencyEUR");
        assert_eq!(p.replica_hour["command-service"], 0.05);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let text = "cost:\n  currency: dollars\n  replica_hour:\n    command-service: -1\n    billing: 0.1\n";
        let errs = parse_str("slo/cost.yaml", text).expect_err("invalid").0;
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert!(got.contains(&(2, "cost.currency")), "{errs:?}");
        assert!(
            got.contains(&(4, "cost.replica_hour.command-service")),
            "{errs:?}"
        );
        assert!(got.contains(&(5, "cost.replica_hour.billing")), "{errs:?}");
        assert!(errs.iter().all(|e| e.file == "slo/cost.yaml"));
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_located() {
        let errs = parse_str(
            "c.yaml",
            "cost:\n  currency: USD\n  replica_hour:\n    observer: cheap\n",
        )
        .expect_err("invalid")
        .0;
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 4, "{errs:?}");
        assert!(
            parse_str(
                "c.yaml",
                "cost:\n  currency: USD\n  replica_hour: {}\n  extra: 1\n"
            )
            .is_err()
        );
    }
}
