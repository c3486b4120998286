//! Layered configuration: defaults (serde) → optional TOML file → environment.
//! Unknown keys are errors, durations carry unit suffixes (`_ms`, `_secs`),
//! and errors name the file, line and key.

use std::path::Path;

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("config key '{key}' (from {source_hint}): {message}")]
    Field {
        key: String,
        source_hint: String,
        message: String,
    },
}

/// Load `T` from `file` (if given and present) overlaid with environment
/// variables `PREFIX_KEY` (nested tables with `__`). Values are read as TOML
/// literals when they parse as one (`5`, `true`, `[1, 2]`), otherwise as strings;
/// quote a numeric string: `PREFIX_KEY='"123"'`.
pub fn load<T: DeserializeOwned>(prefix: &str, file: Option<&Path>) -> Result<T, ConfigError> {
    load_from(prefix, file, std::env::vars())
}

pub fn load_from<T: DeserializeOwned>(
    prefix: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let mut root = toml::Table::new();
    let mut file_name = String::from("defaults");
    if let Some(path) = file {
        file_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            file: file_name.clone(),
            message: e.to_string(),
        })?;
        root = text.parse::<toml::Table>().map_err(|e| ConfigError::File {
            file: file_name.clone(),
            message: e.to_string(),
        })?;
    }
    let want = format!("{}_", prefix.to_ascii_uppercase());
    let mut from_env = Vec::new();
    for (k, v) in env {
        let Some(rest) = k.strip_prefix(&want) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let value = format!("v = {v}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(v));
        let mut table = &mut root;
        for seg in &path[..path.len() - 1] {
            let entry = table
                .entry(seg.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            let toml::Value::Table(t) = entry else {
                unreachable!("made a table just above")
            };
            table = t;
        }
        if let Some(last) = path.last() {
            table.insert(last.clone(), value);
        }
        from_env.push(k);
    }
    let de = toml::Value::Table(root);
    serde_path_to_error::deserialize(de.clone()).map_err(|e| {
        let mut message = e.inner().to_string();
        let mut key = e.path().to_string();
        // Inside a flattened block serde loses the path: ask the block.
        if key == "."
            && let Some((k, m)) = crate::common::locate(&de)
        {
            (key, message) = (k, m);
        }
        // With flattened blocks serde reports an unknown key at the root:
        // name the key itself.
        if key == "."
            && let Some(name) = message
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
        {
            key = name.to_string();
        }
        // serde reports a missing key at its parent; name the key itself.
        if let Some(name) = message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            key = if key == "." {
                name.to_string()
            } else {
                format!("{key}.{name}")
            };
            let env_key = format!("{want}{}", key.replace('.', "__").to_ascii_uppercase());
            return ConfigError::Field {
                key,
                source_hint: file_name.clone(),
                message: format!("is required: set {env_key} or put it in the config file"),
            };
        }
        let env_key = format!("{want}{}", key.replace('.', "__").to_ascii_uppercase());
        let source_hint = if from_env.contains(&env_key) {
            format!("env {env_key}")
        } else {
            file_name.clone()
        };
        ConfigError::Field {
            key,
            source_hint,
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(default = "d")]
        listen_addr: String,
        #[serde(default)]
        timeout_ms: u64,
        #[serde(default)]
        flag: bool,
    }
    fn d() -> String {
        "127.0.0.1:0".into()
    }

    #[test]
    fn env_overrides_defaults_with_types() {
        let env = vec![
            ("APP_TIMEOUT_MS".to_string(), "250".to_string()),
            ("APP_FLAG".into(), "true".into()),
        ];
        let c: Cfg = load_from("app", None, env).expect("loads");
        assert_eq!(
            c,
            Cfg {
                listen_addr: "127.0.0.1:0".into(),
                timeout_ms: 250,
                flag: true
            }
        );
    }

    #[test]
    fn a_missing_required_key_is_named_with_its_variable() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Needs {
            database_url: String,
        }
        let err =
            load_from::<Needs>("app", None, Vec::<(String, String)>::new()).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "config key 'database_url' (from defaults): is required: set APP_DATABASE_URL or put it in the config file"
        );
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let err = load_from::<Cfg>("app", None, vec![("APP_TIMEOUT".into(), "1".into())])
            .expect_err("unknown");
        assert!(err.to_string().contains("timeout"), "{err}");
        let err = load_from::<Cfg>("app", None, vec![("APP_TIMEOUT_MS".into(), "soon".into())])
            .expect_err("type");
        assert!(err.to_string().contains("APP_TIMEOUT_MS"), "{err}");
    }
}
