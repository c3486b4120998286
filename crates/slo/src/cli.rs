//! What `todoctl slo …` does, kept here so it is tested with the library.
//! Each function returns the text to print and whether the command succeeded.

use std::path::Path;

use crate::generate as gen_mod;
use crate::{Error, explain, openslo, validate};

pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
}

impl Outcome {
    fn ok(stdout: String) -> Self {
        Outcome {
            stdout,
            stderr: String::new(),
            ok: true,
        }
    }
    fn fail(stderr: String) -> Self {
        Outcome {
            stdout: String::new(),
            stderr,
            ok: false,
        }
    }
}

fn failure(e: Error) -> Outcome {
    match e {
        // one line per problem: file:line:col: field: message (fix: ...)
        Error::Spec(errs) => Outcome::fail(format!("{errs}\n{} error(s)\n", errs.0.len())),
        e => Outcome::fail(format!("error: {e}\n")),
    }
}

/// Both results, or every spec error of both (another error as it is).
fn merge<A, B>(a: Result<A, Error>, b: Result<B, Error>) -> Result<(A, B), Error> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(Error::Spec(mut a)), Err(Error::Spec(b))) => {
            a.0.extend(b.0);
            Err(Error::Spec(a))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// `todoctl slo validate [--specs DIR | FILE...]`.
pub fn validate(specs: &Path, files: &[std::path::PathBuf]) -> Outcome {
    let result = if files.is_empty() {
        // the SLO specs, receivers.yaml and cost.yaml, every problem of each reported
        let side = merge(
            crate::receivers::load(specs).map(drop),
            crate::cost::load(specs).map(drop),
        );
        merge(validate::load_dir(specs), side).map(|(slos, _)| slos)
    } else {
        let mut texts = Vec::new();
        for f in files {
            match std::fs::read_to_string(f) {
                Ok(t) => texts.push((f.display().to_string(), t)),
                Err(e) => return failure(Error::io(f, e)),
            }
        }
        validate::load_texts(&texts).map_err(Error::Spec)
    };
    match result {
        Ok(slos) => Outcome::ok(format!("{} SLO(s) valid\n", slos.len())),
        Err(e) => failure(e),
    }
}

/// `todoctl slo generate [--specs DIR] [--out ROOT] [--check] [--runbook-base URL]`.
pub fn generate(specs: &Path, root: &Path, check: bool, opts: &gen_mod::Options) -> Outcome {
    let slos = match validate::load_dir(specs) {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let receivers = match crate::receivers::load(specs) {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    let prices = match crate::cost::load(specs) {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    if check {
        let want = match gen_mod::artifacts_with(&slos, &receivers, &prices, opts) {
            Ok(a) => a,
            Err(e) => return failure(e),
        };
        let stale: Vec<String> = want
            .iter()
            .filter(|(rel, text)| {
                std::fs::read_to_string(root.join(rel)).ok().as_deref() != Some(text.as_str())
            })
            .map(|(rel, _)| rel.display().to_string())
            .collect();
        return if stale.is_empty() {
            Outcome::ok(format!("{} generated file(s) up to date\n", want.len()))
        } else {
            Outcome::fail(format!(
                "out of date (run `todoctl slo generate`):\n{}\n",
                stale.join("\n")
            ))
        };
    }
    match gen_mod::write_all(&slos, &receivers, &prices, opts, root) {
        Ok(changed) => {
            let mut s: String = changed
                .iter()
                .map(|p| format!("wrote {}\n", p.display()))
                .collect();
            s.push_str(&format!(
                "{} SLO(s), {} file(s) changed\n",
                slos.len(),
                changed.len()
            ));
            Outcome::ok(s)
        }
        Err(e) => failure(e),
    }
}

/// `todoctl slo explain [NAME] [--specs DIR]`; every SLO when no name is given.
pub fn explain(specs: &Path, name: Option<&str>) -> Outcome {
    let slos = match validate::load_dir(specs) {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let chosen: Vec<_> = slos
        .iter()
        .filter(|s| name.is_none_or(|n| s.name == n))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = slos.iter().map(|s| s.name.as_str()).collect();
        return Outcome::fail(format!(
            "no SLO named `{}`; known: {}\n",
            name.unwrap_or(""),
            names.join(", ")
        ));
    }
    Outcome::ok(
        chosen
            .iter()
            .map(|s| explain::explain(s))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// `todoctl slo import FILE [--out DIR]`: OpenSLO v1, Sloth (`prometheus/v1`
/// or the `PrometheusServiceLevel` CRD) or Pyrra (`ServiceLevelObjective`),
/// recognised by the first document, → `DIR/<service>.yaml`. Refuses to
/// overwrite existing specs and validates the result; what was not kept is
/// printed as notes on stderr.
pub fn import(file: &Path, out_dir: &Path) -> Outcome {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return failure(Error::io(file, e)),
    };
    let name = file.display().to_string();
    let (rendered, notes) = match crate::import::convert(&name, &text) {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    if let Err(e) = validate::load_texts(&rendered) {
        return failure(Error::Spec(e));
    }
    let mut out = String::new();
    for (name, _) in &rendered {
        let path = out_dir.join(name);
        if path.exists() {
            return Outcome::fail(format!(
                "{} exists; import into another directory or merge by hand\n",
                path.display()
            ));
        }
    }
    for (name, yaml) in rendered {
        let path = out_dir.join(&name);
        if let Err(e) = std::fs::create_dir_all(out_dir).and_then(|_| std::fs::write(&path, yaml)) {
            return failure(Error::io(&path, e));
        }
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    let mut o = Outcome::ok(out);
    o.stderr = notes.iter().map(|n| format!("note: {n}\n")).collect();
    o
}

/// `todoctl slo export --format openslo [--specs DIR]`: every SLO as OpenSLO v1 documents.
pub fn export(specs: &Path) -> Outcome {
    match openslo::export_dir(specs) {
        Ok(text) => Outcome::ok(text),
        Err(e) => failure(e),
    }
}
