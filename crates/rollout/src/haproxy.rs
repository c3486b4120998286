//! HAProxy's runtime API (`stats socket ... level admin`): server weights of
//! one backend with a stable and a canary server. Weight = percentage, so
//! stable gets `100 − p` and the canary `p` (HAProxy weights go to 256).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::{DriverError, DriverFuture, RolloutDriver, Side};

#[derive(Debug, Clone)]
pub struct HaproxyDriver {
    /// `host:port` of a TCP runtime API socket (`stats socket ipv4@host:port level admin`).
    pub runtime_api: String,
    pub backend: String,
    pub stable_server: String,
    pub canary_server: String,
    /// Blue-green: green's `backend/server` in the preview backend, taken
    /// out of service with green.
    pub preview: Option<String>,
    pub timeout: Duration,
}

impl HaproxyDriver {
    pub fn new(
        runtime_api: impl Into<String>,
        backend: impl Into<String>,
        stable: impl Into<String>,
        canary: impl Into<String>,
    ) -> Self {
        Self {
            runtime_api: runtime_api.into(),
            backend: backend.into(),
            stable_server: stable.into(),
            canary_server: canary.into(),
            preview: None,
            timeout: Duration::from_secs(2),
        }
    }

    /// Blue-green: green also serves the preview backend's `backend/server`.
    pub fn with_preview(mut self, preview: impl Into<String>) -> Self {
        self.preview = Some(preview.into());
        self
    }

    /// Several commands in one request (`a; b`): HAProxy runs them in
    /// order without another client's command in between. Every one must
    /// answer nothing (success).
    async fn commands(&self, commands: &[String]) -> Result<(), DriverError> {
        let command = commands.join("; ");
        let answer = self.command(&command).await?;
        if answer.trim().is_empty() {
            Ok(())
        } else {
            Err(DriverError::Refused {
                what: self.what(),
                command,
                answer,
            })
        }
    }

    /// `backend/server` names of `side`.
    fn servers(&self, side: Side) -> Vec<String> {
        match side {
            Side::Stable => vec![format!("{}/{}", self.backend, self.stable_server)],
            Side::Canary => std::iter::once(format!("{}/{}", self.backend, self.canary_server))
                .chain(self.preview.clone())
                .collect(),
        }
    }

    /// Whether `backend/server` is running (`show servers state`'s
    /// `srv_op_state` 2).
    async fn running(&self, server: &str) -> Result<bool, DriverError> {
        let (backend, name) = server.split_once('/').unwrap_or((server, ""));
        let command = format!("show servers state {backend}");
        let answer = self.command(&command).await?;
        // be_id be_name srv_id srv_name srv_addr srv_op_state …
        let row = answer.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&backend) && f.get(3) == Some(&name)).then(|| f.get(5).copied())
        });
        match row {
            Some(state) => Ok(state == Some("2")),
            None => Err(DriverError::Unexpected {
                what: self.what(),
                command,
                answer,
            }),
        }
    }

    async fn set_state(&self, side: Side, state: &str) -> Result<(), DriverError> {
        let cmds: Vec<String> = self
            .servers(side)
            .iter()
            .map(|s| format!("set server {s} state {state}"))
            .collect();
        self.commands(&cmds).await
    }

    fn what(&self) -> String {
        format!("HAProxy runtime API at {}", self.runtime_api)
    }

    /// One command per connection (the API's non-interactive mode): write it,
    /// read the answer until HAProxy closes.
    async fn command(&self, command: &str) -> Result<String, DriverError> {
        let io = async {
            let mut s = TcpStream::connect(&self.runtime_api).await?;
            s.write_all(format!("{command}\n").as_bytes()).await?;
            let mut answer = String::new();
            s.read_to_string(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        match tokio::time::timeout(self.timeout, io).await {
            Ok(Ok(a)) => Ok(a.trim().to_string()),
            Ok(Err(source)) => Err(DriverError::Unreachable {
                what: self.what(),
                source,
            }),
            Err(_) => Err(DriverError::Unreachable {
                what: self.what(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?}", self.timeout),
                ),
            }),
        }
    }

    async fn set_weight(&self, server: &str, weight: u32) -> Result<(), DriverError> {
        let command = format!("set weight {}/{} {weight}", self.backend, server);
        let answer = self.command(&command).await?;
        // Success is an empty answer; anything else is HAProxy's reason.
        if answer.is_empty() {
            Ok(())
        } else {
            Err(DriverError::Refused {
                what: self.what(),
                command,
                answer,
            })
        }
    }

    async fn weight(&self, server: &str) -> Result<u32, DriverError> {
        let command = format!("get weight {}/{}", self.backend, server);
        let answer = self.command(&command).await?;
        // "10 (initial 0)"
        answer
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| DriverError::Unexpected {
                what: self.what(),
                command,
                answer,
            })
    }
}

impl RolloutDriver for HaproxyDriver {
    fn set_canary_percent(&self, percent: u32) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            if percent > 100 {
                return Err(DriverError::Percent(percent));
            }
            if percent == 0 || percent == 100 {
                // All traffic to one side (a blue-green switch, a rollback):
                // one request, the side that gains first.
                let (gain, lose) = if percent == 100 {
                    (&self.canary_server, &self.stable_server)
                } else {
                    (&self.stable_server, &self.canary_server)
                };
                return self
                    .commands(&[
                        format!("set weight {}/{gain} 100", self.backend),
                        format!("set weight {}/{lose} 0", self.backend),
                    ])
                    .await;
            }
            // Shift towards stable first when the canary shrinks, towards the
            // canary first when it grows, so the backend never has both at 0.
            let (first, second) = if percent <= self.canary_percent().await.unwrap_or(100) {
                (
                    (&self.stable_server, 100 - percent),
                    (&self.canary_server, percent),
                )
            } else {
                (
                    (&self.canary_server, percent),
                    (&self.stable_server, 100 - percent),
                )
            };
            self.set_weight(first.0, first.1).await?;
            self.set_weight(second.0, second.1).await
        })
    }

    fn scale_down(&self, side: Side) -> DriverFuture<'_, ()> {
        Box::pin(self.set_state(side, "maint"))
    }

    fn scale_up(&self, side: Side) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            self.set_state(side, "ready").await?;
            // Out of maintenance a checked server is DOWN until its health
            // check passes: wait for that, so traffic moved to it right
            // after finds it up (a server without checks is up at once).
            let deadline = tokio::time::Instant::now() + 5 * self.timeout;
            loop {
                let mut all_up = true;
                for s in self.servers(side) {
                    all_up &= self.running(&s).await?;
                }
                if all_up {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(DriverError::Unexpected {
                        what: self.what(),
                        command: "show servers state".into(),
                        answer: format!(
                            "{} servers not up {:?} after leaving maintenance",
                            side.as_str(),
                            5 * self.timeout
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    fn canary_percent(&self) -> DriverFuture<'_, u32> {
        Box::pin(async move {
            let canary = self.weight(&self.canary_server).await?;
            let stable = self.weight(&self.stable_server).await?;
            let total = canary + stable;
            Ok((100 * canary + total / 2).checked_div(total).unwrap_or(0))
        })
    }
}
