//! The compose parity run: the services of `docker-compose.yml` as local
//! processes, with the compose file as the single source of truth for each
//! service's environment, command, volumes, ports and names.
//!
//! - Every service gets a loopback address of its own (`127.0.0.N`), so
//!   in-container ports keep their compose values; `network_mode:
//!   service:X` shares X's address.
//! - Service names resolve to those addresses for the child processes only:
//!   each runs in a private mount namespace over a copy-on-write root with
//!   its own `/etc/hosts` and the compose volumes at their container paths
//!   ([`container`]).
//! - Images map to local programs (PostgreSQL, HAProxy, Prometheus,
//!   Alertmanager and the blackbox exporter from Debian, tansu for
//!   `apache/kafka`, the workspace binaries for our images with the
//!   Dockerfile's ENV, USER and ENTRYPOINT); images with no local program
//!   get stand-ins speaking the same protocol on the same ports
//!   ([`standins`]).
//! - The one rewrite: a container's own addresses (`0.0.0.0`, `127.0.0.1`,
//!   `localhost`) become the service's address ([`localize`]); every
//!   rewrite is listed.

pub mod container;
pub mod dockerfile;
pub mod file;
pub mod localize;
pub mod run;
pub mod standins;

pub use file::{Project, Vars, load};
pub use run::{ComposeStack, Options};
