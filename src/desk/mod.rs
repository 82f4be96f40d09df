//! The reception desk: a local web page to enroll people, manage the gallery and watch the
//! door's health (`facegate desk`).
//!
//! It runs beside the door, never inside it: the door process (`facegate run`) opens no
//! socket. The page and everything it loads are inside the binary; it listens on loopback
//! unless told otherwise, and every request needs the token printed at start
//! ([`auth`]). Changes go through the same gallery code as the command line (atomic
//! write, `.bak`, signature when a key is given).
//!
//! - [`auth`]: the token.
//! - [`health`]: what the audit log says about the door (decisions, grants per hour, score
//!   drift).
//! - [`state`]: the options and the state the frame loop and the HTTP side share, and the
//!   one way to change the gallery file.
//! - [`server`]: the frame loop behind the page.
//! - [`http`]: the requests: host, token (header or cookie), body limits, routes.
//! - [`listen`]: the HTTP/1.1 server (hyper on a one-thread tokio runtime): connection cap,
//!   header and body size and time limits.
//! - [`tls`]: the certificate for a desk reached from another machine.
//! - [`samples`]: presentation samples recorded with the site's camera, the texture check's
//!   APCER and BPCER on them, and the threshold written into the door's config.

pub mod auth;
pub mod health;
pub mod http;
pub mod listen;
pub mod samples;
pub mod server;
pub mod state;
pub mod tls;

pub use server::{Desk, DeskOptions};
