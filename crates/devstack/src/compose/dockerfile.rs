//! What a Dockerfile stage gives a container of our own images: its
//! environment, user and entrypoint (inherited through `FROM stage`), and
//! which workspace binary is copied to the entrypoint's path.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;

#[derive(Debug, Clone, Default)]
pub struct Stage {
    pub parent: Option<String>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    /// (source under the build stage, destination in the image)
    pub copies: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Dockerfile {
    stages: HashMap<String, Stage>,
}

/// The image as a container sees it.
#[derive(Debug, Clone)]
pub struct Image {
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub entrypoint: Vec<String>,
    /// The workspace binary behind the entrypoint (`/out/<name>` copied to it).
    pub binary: String,
}

impl Dockerfile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut stages: HashMap<String, Stage> = HashMap::new();
        let mut current: Option<String> = None;
        let mut logical = String::new();
        let mut lines = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('#') && logical.is_empty() {
                continue;
            }
            if let Some(cont) = t.strip_suffix('\\') {
                logical.push_str(cont);
                logical.push(' ');
                continue;
            }
            logical.push_str(t);
            lines.push(std::mem::take(&mut logical));
        }
        for line in lines {
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            let rest = rest.trim();
            match word.to_ascii_uppercase().as_str() {
                "FROM" => {
                    let parts: Vec<&str> = rest.split_whitespace().collect();
                    let (base, name) = match parts.as_slice() {
                        [base, as_, name] if as_.eq_ignore_ascii_case("as") => (*base, *name),
                        [base] => (*base, *base),
                        _ => return Err(format!("cannot read FROM {rest}")),
                    };
                    let parent = stages.contains_key(base).then(|| base.to_string());
                    stages.insert(
                        name.to_string(),
                        Stage {
                            parent,
                            ..Stage::default()
                        },
                    );
                    current = Some(name.to_string());
                }
                kw @ ("ENV" | "USER" | "ENTRYPOINT" | "COPY") => {
                    let Some(stage) = current.as_ref().and_then(|c| stages.get_mut(c)) else {
                        return Err(format!("{kw} before FROM"));
                    };
                    match kw {
                        "ENV" => {
                            if rest.contains('=') {
                                for pair in rest.split_whitespace() {
                                    if let Some((k, v)) = pair.split_once('=') {
                                        stage.env.push((k.into(), v.trim_matches('"').into()));
                                    }
                                }
                            } else if let Some((k, v)) = rest.split_once(' ') {
                                stage.env.push((k.into(), v.trim().into()));
                            }
                        }
                        "USER" => stage.user = Some(rest.to_string()),
                        "ENTRYPOINT" => {
                            let list: Vec<String> = serde_norway::from_str(rest)
                                .map_err(|_| format!("ENTRYPOINT must be a JSON list: {rest}"))?;
                            stage.entrypoint = Some(list);
                        }
                        _ => {
                            let args: Vec<&str> = rest
                                .split_whitespace()
                                .filter(|a| !a.starts_with("--"))
                                .collect();
                            if let [src, dst] = args.as_slice() {
                                stage.copies.push((src.to_string(), dst.to_string()));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Self { stages })
    }

    /// The image built from `target`.
    pub fn image(&self, target: &str) -> anyhow::Result<Image> {
        let mut chain = Vec::new();
        let mut at = Some(target.to_string());
        while let Some(name) = at {
            let stage = self
                .stages
                .get(&name)
                .ok_or_else(|| anyhow::anyhow!("the Dockerfile has no stage {name:?}"))?;
            chain.push(stage);
            at = stage.parent.clone();
        }
        let mut env: Vec<(String, String)> = Vec::new();
        let (mut user, mut entrypoint) = (None, None);
        for stage in chain.iter().rev() {
            for (k, v) in &stage.env {
                env.retain(|(e, _)| e != k);
                env.push((k.clone(), v.clone()));
            }
            user = stage.user.clone().or(user);
            entrypoint = stage.entrypoint.clone().or(entrypoint);
        }
        let entrypoint = entrypoint
            .filter(|e| !e.is_empty())
            .ok_or_else(|| anyhow::anyhow!("stage {target:?} has no ENTRYPOINT"))?;
        let binary = chain
            .iter()
            .flat_map(|s| &s.copies)
            .find(|(_, dst)| *dst == entrypoint[0])
            .and_then(|(src, _)| src.rsplit('/').next())
            .map(str::to_string)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "stage {target:?}: nothing is copied to its entrypoint {}",
                    entrypoint[0]
                )
            })?;
        Ok(Image {
            env,
            user,
            entrypoint,
            binary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_inherits_env_and_user_and_names_its_binary() {
        let d = Dockerfile::parse(
            "FROM rust AS build\nFROM debian AS runtime\nUSER 10001:10001\nENV RUST_LOG=info\n\
             FROM runtime AS svc\nCOPY --from=build /out/svc /usr/local/bin/svc\n\
             ENV SVC_LISTEN_ADDR=0.0.0.0:8080\nENTRYPOINT [\"/usr/local/bin/svc\"]\n",
        )
        .expect("parses");
        let img = d.image("svc").expect("image");
        assert_eq!(img.user.as_deref(), Some("10001:10001"));
        assert_eq!(img.binary, "svc");
        assert_eq!(img.entrypoint, vec!["/usr/local/bin/svc".to_string()]);
        assert!(img.env.contains(&("RUST_LOG".into(), "info".into())));
        assert!(
            img.env
                .contains(&("SVC_LISTEN_ADDR".into(), "0.0.0.0:8080".into()))
        );
        assert!(d.image("nope").is_err());
    }
}
