//! `docker-compose.yml` read the way Compose reads it: YAML anchors and
//! merge keys (`<<`), `${VAR}` interpolation from an env file and the
//! environment, the short and long forms of `environment`, `command`,
//! `volumes`, `ports`, `depends_on` and `healthcheck`.
//!
//! Only what the parity run needs is modelled; a key it does not know is
//! ignored, a malformed value is an error naming the file and the field.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_norway::Value;

/// Variables for `${VAR}` interpolation: an env file overlaid with explicit
/// values (the shell environment, in Compose's precedence).
#[derive(Debug, Clone, Default)]
pub struct Vars {
    vars: HashMap<String, String>,
    /// Where they came from, for messages.
    pub source: String,
}

impl Vars {
    /// `KEY=VALUE` lines; `#` comments, blank lines, `export ` and matching
    /// quotes are allowed, as in Compose's `.env`.
    pub fn from_env_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading env file {}", path.display()))?;
        let mut vars = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((k, v)) = line.split_once('=') else {
                anyhow::bail!("{}:{}: expected KEY=VALUE", path.display(), n + 1);
            };
            let v = v.trim();
            let v = [('"', '"'), ('\'', '\'')]
                .iter()
                .find_map(|(a, b)| v.strip_prefix(*a).and_then(|r| r.strip_suffix(*b)))
                .unwrap_or(v);
            vars.insert(k.trim().to_string(), v.to_string());
        }
        Ok(Self {
            vars,
            source: path.display().to_string(),
        })
    }

    /// Override (or add) one variable, as the shell environment does.
    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.insert(key.to_string(), value.to_string());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// Compose interpolation of one string: `$$`, `$VAR`, `${VAR}`,
    /// `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
    /// `${VAR:+alt}`, `${VAR+alt}`.
    pub fn interpolate(&self, s: &str) -> Result<String, String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(r) = after.strip_prefix('{') {
                let end = closing_brace(r).ok_or_else(|| format!("unclosed '${{' in {s:?}"))?;
                out.push_str(&self.expand(&r[..end])?);
                rest = &r[end + 1..];
            } else {
                let len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                if len == 0 {
                    out.push('$');
                } else {
                    out.push_str(self.get(&after[..len]).unwrap_or(""));
                }
                rest = &after[len..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn expand(&self, expr: &str) -> Result<String, String> {
        let name_len = expr
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(expr.len());
        let (name, op) = expr.split_at(name_len);
        if name.is_empty() {
            return Err(format!("invalid interpolation '${{{expr}}}'"));
        }
        let value = self.get(name);
        let set_nonempty = value.is_some_and(|v| !v.is_empty());
        let arg = |p: &str| op.strip_prefix(p).map(|a| self.interpolate(a));
        if op.is_empty() {
            return Ok(value.unwrap_or("").to_string());
        }
        if let Some(d) = arg(":-") {
            return if set_nonempty {
                Ok(value.unwrap_or("").into())
            } else {
                d
            };
        }
        if let Some(d) = arg("-") {
            return value.map(|v| Ok(v.to_string())).unwrap_or(d);
        }
        if let Some(m) = arg(":?") {
            return if set_nonempty {
                Ok(value.unwrap_or("").into())
            } else {
                Err(format!(
                    "required variable {name} is missing a value: {}",
                    m?
                ))
            };
        }
        if let Some(m) = arg("?") {
            return value
                .map(|v| Ok(v.to_string()))
                .unwrap_or_else(|| Err(format!("required variable {name} is missing: {}", m?)));
        }
        if let Some(a) = arg(":+") {
            return if set_nonempty { a } else { Ok(String::new()) };
        }
        if let Some(a) = arg("+") {
            return if value.is_some() {
                a
            } else {
                Ok(String::new())
            };
        }
        Err(format!("invalid interpolation '${{{expr}}}'"))
    }
}

/// The `}` that closes a `${` whose body starts `r` (defaults may nest `${…}`).
fn closing_brace(r: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = r.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub file: PathBuf,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    /// In file order.
    pub services: Vec<Service>,
}

impl Project {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub image: Option<String>,
    pub build_target: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    /// Resolved: entries without a value take the variable of that name or
    /// are left out, as Compose does.
    pub environment: Vec<(String, String)>,
    pub volumes: Vec<Volume>,
    pub ports: Vec<Port>,
    pub depends_on: Vec<(String, Condition)>,
    pub healthcheck: Option<Healthcheck>,
    pub network_mode: Option<String>,
    pub user: Option<String>,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeSource {
    /// A host path, absolute.
    Bind(PathBuf),
    /// A named volume.
    Named(String),
}

#[derive(Debug, Clone)]
pub struct Volume {
    pub source: VolumeSource,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

#[derive(Debug, Clone)]
pub struct Healthcheck {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

impl Healthcheck {
    /// How long Compose waits before calling the service unhealthy.
    pub fn deadline(&self) -> Duration {
        self.start_period + self.interval * self.retries.max(1)
    }
}

/// Load and resolve a compose file.
pub fn load(file: &Path, vars: &Vars) -> anyhow::Result<Project> {
    let file = std::path::absolute(file)?;
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let mut root: Value =
        serde_norway::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    root.apply_merge()
        .map_err(|e| anyhow::anyhow!("{}: merge keys: {e}", file.display()))?;
    interpolate_tree(&mut root, vars, "")
        .map_err(|e| anyhow::anyhow!("{}: {e} (variables from {})", file.display(), vars.source))?;
    let at = |field: &str, e: String| anyhow::anyhow!("{}: {field}: {e}", file.display());
    let name = root
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let Some(services) = root.get("services").and_then(Value::as_mapping) else {
        anyhow::bail!("{}: no services", file.display());
    };
    let mut out = Vec::new();
    for (k, v) in services {
        let name = k
            .as_str()
            .ok_or_else(|| at("services", "a non-string key".into()))?;
        let field = |f: &str| format!("services.{name}.{f}");
        let svc = parse_service(name, v, &dir, vars).map_err(|(f, e)| at(&field(&f), e))?;
        out.push(svc);
    }
    for s in &out {
        for (d, _) in &s.depends_on {
            anyhow::ensure!(
                out.iter().any(|o| &o.name == d),
                "{}: services.{}.depends_on: no service named {d}",
                file.display(),
                s.name
            );
        }
    }
    Ok(Project {
        name,
        file,
        dir,
        services: out,
    })
}

fn interpolate_tree(v: &mut Value, vars: &Vars, path: &str) -> Result<(), String> {
    match v {
        Value::String(s) => {
            *s = vars.interpolate(s).map_err(|e| format!("{path}: {e}"))?;
        }
        Value::Sequence(seq) => {
            for (i, x) in seq.iter_mut().enumerate() {
                interpolate_tree(x, vars, &format!("{path}[{i}]"))?;
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let p = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                interpolate_tree(x, vars, &p)?;
            }
        }
        Value::Tagged(t) => interpolate_tree(&mut t.value, vars, path)?,
        _ => {}
    }
    Ok(())
}

type FieldError = (String, String);

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string is split like a shell would (quotes, no expansion); a list is taken as is.
fn words(v: &Value, field: &str) -> Result<Vec<String>, FieldError> {
    match v {
        Value::Sequence(s) => s
            .iter()
            .map(|x| scalar(x).ok_or_else(|| (field.to_string(), "expected strings".into())))
            .collect(),
        Value::String(s) => shell_words(s).map_err(|e| (field.to_string(), e)),
        _ => Err((field.to_string(), "expected a string or a list".into())),
    }
}

fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => cur.extend(chars.next()),
                        Some(x) => cur.push(x),
                        None => return Err(format!("unclosed quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// A duration as Compose (and k6) write one: a number and `ms`, `s`, `m` or `h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

fn duration(v: Option<&Value>, default: Duration, field: &str) -> Result<Duration, FieldError> {
    let Some(v) = v else { return Ok(default) };
    let s = scalar(v).unwrap_or_default();
    parse_duration(&s).ok_or_else(|| (field.to_string(), format!("not a duration: {s:?}")))
}

fn parse_service(name: &str, v: &Value, dir: &Path, vars: &Vars) -> Result<Service, FieldError> {
    let e = |f: &str, m: &str| (f.to_string(), m.to_string());
    let get = |k: &str| v.get(k);
    let image = get("image").and_then(scalar);
    let build_target = match get("build") {
        Some(Value::Mapping(b)) => b.get("target").and_then(scalar),
        _ => None,
    };
    let entrypoint = get("entrypoint")
        .map(|x| words(x, "entrypoint"))
        .transpose()?;
    let command = get("command").map(|x| words(x, "command")).transpose()?;

    let mut environment = BTreeMap::new();
    match get("environment") {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, x) in m {
                let k = scalar(k).ok_or_else(|| e("environment", "a non-string key"))?;
                let val = match x {
                    Value::Null => vars.get(&k).map(str::to_string),
                    other => Some(
                        scalar(other)
                            .ok_or_else(|| e(&format!("environment.{k}"), "expected a scalar"))?,
                    ),
                };
                if let Some(val) = val {
                    environment.insert(k, val);
                }
            }
        }
        Some(Value::Sequence(s)) => {
            for x in s {
                let item =
                    scalar(x).ok_or_else(|| e("environment", "expected KEY=VALUE strings"))?;
                match item.split_once('=') {
                    Some((k, val)) => environment.insert(k.to_string(), val.to_string()),
                    None => match vars.get(&item) {
                        Some(val) => environment.insert(item.clone(), val.to_string()),
                        None => None,
                    },
                };
            }
        }
        Some(_) => return Err(e("environment", "expected a mapping or a list")),
    }

    let mut volumes = Vec::new();
    for (i, x) in get("volumes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("volumes[{i}]");
        let (source, target, ro) = match x {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [src, dst] => (src.to_string(), dst.to_string(), false),
                    [src, dst, mode] => (
                        src.to_string(),
                        dst.to_string(),
                        mode.split(',').any(|m| m == "ro"),
                    ),
                    _ => return Err(e(&field, "expected SOURCE:TARGET[:MODE]")),
                }
            }
            Value::Mapping(m) => (
                m.get("source").and_then(scalar).unwrap_or_default(),
                m.get("target")
                    .and_then(scalar)
                    .ok_or_else(|| e(&field, "needs a target"))?,
                m.get("read_only").and_then(Value::as_bool).unwrap_or(false),
            ),
            _ => return Err(e(&field, "expected a string or a mapping")),
        };
        let source =
            if source.starts_with('.') || source.starts_with('/') || source.starts_with('~') {
                let p = if let Some(rel) = source.strip_prefix("~/") {
                    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rel)
                } else {
                    dir.join(&source)
                };
                VolumeSource::Bind(normalize(&p))
            } else {
                VolumeSource::Named(source)
            };
        volumes.push(Volume {
            source,
            target,
            read_only: ro,
        });
    }

    let mut ports = Vec::new();
    for (i, x) in get("ports")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("ports[{i}]");
        let s = scalar(x).ok_or_else(|| e(&field, "only the short form HOST:CONTAINER is read"))?;
        let s = s.split('/').next().unwrap_or_default();
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| e(&field, &format!("bad port {p:?}")))
        };
        let port = match parts.as_slice() {
            [c] => Port {
                host_ip: "0.0.0.0".into(),
                host_port: num(c)?,
                container_port: num(c)?,
            },
            [h, c] => Port {
                host_ip: "0.0.0.0".into(),
                host_port: num(h)?,
                container_port: num(c)?,
            },
            [ip, h, c] => Port {
                host_ip: ip.to_string(),
                host_port: num(h)?,
                container_port: num(c)?,
            },
            _ => return Err(e(&field, "expected [IP:]HOST:CONTAINER")),
        };
        ports.push(port);
    }

    let mut depends_on = Vec::new();
    match get("depends_on") {
        None => {}
        Some(Value::Sequence(s)) => {
            for x in s {
                let d = scalar(x).ok_or_else(|| e("depends_on", "expected service names"))?;
                depends_on.push((d, Condition::Started));
            }
        }
        Some(Value::Mapping(m)) => {
            for (k, x) in m {
                let d = scalar(k).ok_or_else(|| e("depends_on", "a non-string key"))?;
                let cond = match x.get("condition").and_then(scalar).as_deref() {
                    None | Some("service_started") => Condition::Started,
                    Some("service_healthy") => Condition::Healthy,
                    Some("service_completed_successfully") => Condition::CompletedSuccessfully,
                    Some(other) => {
                        return Err(e(
                            &format!("depends_on.{d}.condition"),
                            &format!("unknown condition {other:?}"),
                        ));
                    }
                };
                depends_on.push((d, cond));
            }
        }
        Some(_) => return Err(e("depends_on", "expected a list or a mapping")),
    }

    let healthcheck = match get("healthcheck") {
        None => None,
        Some(h) => {
            let test = match h.get("test") {
                Some(Value::String(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
                Some(t) => words(t, "healthcheck.test")?,
                None => return Err(e("healthcheck.test", "missing")),
            };
            Some(Healthcheck {
                test,
                interval: duration(
                    h.get("interval"),
                    Duration::from_secs(30),
                    "healthcheck.interval",
                )?,
                retries: h
                    .get("retries")
                    .and_then(Value::as_u64)
                    .map(|r| r as u32)
                    .unwrap_or(3),
                start_period: duration(
                    h.get("start_period"),
                    Duration::ZERO,
                    "healthcheck.start_period",
                )?,
            })
        }
    };

    Ok(Service {
        name: name.to_string(),
        image,
        build_target,
        entrypoint,
        command,
        environment: environment.into_iter().collect(),
        volumes,
        ports,
        depends_on,
        healthcheck,
        network_mode: get("network_mode").and_then(scalar),
        user: get("user").and_then(scalar),
        read_only: get("read_only").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        let mut v = Vars::default();
        for (k, x) in pairs {
            v.set(k, x);
        }
        v
    }

    #[test]
    fn interpolation_follows_compose() {
        let v = vars(&[("A", "1"), ("EMPTY", "")]);
        let ok = |s: &str| v.interpolate(s).expect(s);
        assert_eq!(ok("x${A}y$A"), "x1y1");
        assert_eq!(ok("${B:-d}"), "d");
        assert_eq!(ok("${EMPTY:-d}|${EMPTY-d}"), "d|");
        assert_eq!(ok("${A:+alt}|${B:+alt}"), "alt|");
        assert_eq!(ok("$${t%%:*} costs $$5"), "${t%%:*} costs $5");
        assert_eq!(ok("${B:-${A}}"), "1");
        let err = v
            .interpolate("${EMPTY:?set EMPTY in .env}")
            .expect_err("required");
        assert!(
            err.contains("EMPTY") && err.contains("set EMPTY in .env"),
            "{err}"
        );
        assert!(v.interpolate("${A").is_err());
    }

    #[test]
    fn anchors_merges_and_short_forms_resolve() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("compose.yml");
        std::fs::write(
            &f,
            r#"
x-env: &env
  A: one
  SHARED: ${SHARED:-fallback}
services:
  db:
    image: postgres:15
    healthcheck:
      test: ["CMD-SHELL", "pg_isready"]
      interval: 2s
      retries: 30
  app:
    build: {context: ., target: app}
    command: run --flag "two words"
    environment:
      <<: *env
      A: overridden
      PASSED:
      MISSING:
    volumes: ["./conf:/etc/app:ro", "data:/data"]
    ports: ["127.0.0.1:8081:8080", "9000"]
    depends_on:
      db: {condition: service_healthy}
"#,
        )
        .expect("write");
        let p = load(&f, &vars(&[("PASSED", "yes")])).expect("loads");
        let app = p.service("app").expect("app");
        assert_eq!(app.build_target.as_deref(), Some("app"));
        assert_eq!(
            app.command.as_deref(),
            Some(&["run".to_string(), "--flag".into(), "two words".into()][..])
        );
        let env: HashMap<_, _> = app.environment.iter().cloned().collect();
        assert_eq!(env["A"], "overridden");
        assert_eq!(env["SHARED"], "fallback");
        assert_eq!(env["PASSED"], "yes");
        assert!(!env.contains_key("MISSING"));
        assert_eq!(
            app.volumes[0].source,
            VolumeSource::Bind(dir.path().join("conf"))
        );
        assert!(app.volumes[0].read_only);
        assert_eq!(app.volumes[1].source, VolumeSource::Named("data".into()));
        assert_eq!(app.ports[0].container_port, 8080);
        assert_eq!(app.ports[1].host_port, 9000);
        assert_eq!(app.depends_on, vec![("db".to_string(), Condition::Healthy)]);
        let hc = p
            .service("db")
            .and_then(|d| d.healthcheck.clone())
            .expect("hc");
        assert_eq!(hc.deadline(), Duration::from_secs(60));
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("compose.yml");
        std::fs::write(
            &f,
            "services:\n  db:\n    environment:\n      PW: ${PW:?set PW}\n",
        )
        .expect("write");
        let err = load(&f, &Vars::default()).expect_err("missing").to_string();
        assert!(
            err.contains("services.db.environment.PW") && err.contains("set PW"),
            "{err}"
        );
        std::fs::write(&f, "services:\n  a:\n    depends_on: [b]\n").expect("write");
        let err = load(&f, &Vars::default())
            .expect_err("dangling")
            .to_string();
        assert!(
            err.contains("services.a.depends_on: no service named b"),
            "{err}"
        );
    }
}
