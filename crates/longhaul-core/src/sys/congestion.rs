//! TCP congestion control per socket (`TCP_CONGESTION`). On a long, lossy path the algorithm
//! decides a factor of 10 to 30 (issue 31: 64 MiB over 100 ms with 0.1% loss took 85 s on one
//! CUBIC stream and 2.7 s on two BBR streams), and most hosts default to CUBIC. So every data
//! socket a transfer's sender opens or accepts gets the algorithm chosen here: `auto` takes BBR
//! when the kernel lets this process use it and otherwise leaves the system's default, saying
//! why; a name asks for that algorithm and fails with E_USAGE where it cannot be had.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::net::{socket, sockopt, AddressFamily, SocketType};

use crate::error::{Error, Result};

/// What the kernel has loaded (root may set any of them on a socket).
pub const AVAILABLE: &str = "proc/sys/net/ipv4/tcp_available_congestion_control";
/// The algorithm a new socket gets when nobody sets one.
pub const SYSTEM_DEFAULT: &str = "proc/sys/net/ipv4/tcp_congestion_control";

/// What a caller asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Congestion {
    /// BBR where this process may use it, else the system's default.
    #[default]
    Auto,
    /// The system's default, untouched (a host's own choice, or a bench emulating one).
    System,
    /// This algorithm (`cubic`, `bbr`, `reno`, ...), or E_USAGE.
    Named(String),
}

impl Congestion {
    pub fn parse(s: &str) -> Result<Congestion> {
        match s {
            "auto" => Ok(Congestion::Auto),
            "system" => Ok(Congestion::System),
            // The kernel's names are at most 15 bytes (TCP_CA_NAME_MAX 16, with the NUL).
            n if !n.is_empty() && n.len() < 16 && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') => {
                Ok(Congestion::Named(n.to_owned()))
            }
            _ => Err(Error::Usage(format!("congestion must be auto, system or an algorithm's name such as bbr or cubic, not {s:?}"))),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Congestion::Auto => "auto",
            Congestion::System => "system",
            Congestion::Named(n) => n,
        }
    }
}

/// What a transfer sets on its data sockets: `set` (None leaves the system's default) and, when
/// `auto` could not have BBR, why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    pub set: Option<String>,
    pub note: Option<String>,
}

/// Chooses, trying each candidate on a fresh socket: what the kernel lists as available may
/// still be refused to a process without CAP_NET_ADMIN (`tcp_allowed_congestion_control`).
pub fn choose(want: &Congestion) -> Result<Choice> {
    choose_with(want, &|name| try_on_new_socket(name))
}

/// `choose`, with the trial given (tests try names without a kernel).
pub fn choose_with(want: &Congestion, try_name: &dyn Fn(&str) -> io::Result<()>) -> Result<Choice> {
    match want {
        Congestion::System => Ok(Choice { set: None, note: None }),
        Congestion::Auto => match try_name("bbr") {
            Ok(()) => Ok(Choice { set: Some("bbr".into()), note: None }),
            Err(e) => Ok(Choice { set: None, note: Some(format!("bbr cannot be used here ({e}): the system's default is kept")) }),
        },
        Congestion::Named(n) => match try_name(n) {
            Ok(()) => Ok(Choice { set: Some(n.clone()), note: None }),
            Err(e) => Err(Error::Usage(format!(
                "congestion control {n:?} cannot be used here ({e}); the kernel offers: {}",
                available(Path::new("/")).join(" ")
            ))),
        },
    }
}

impl Choice {
    /// The algorithm a socket gets under this choice: the one set, or the system's default.
    pub fn effective(&self) -> String {
        self.set.clone().or_else(|| system_default(Path::new("/"))).unwrap_or_else(|| "unknown".into())
    }
}

fn try_on_new_socket(name: &str) -> io::Result<()> {
    let s = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    sockopt::set_tcp_congestion(&s, name)?;
    Ok(())
}

/// Sets `name` on a TCP socket.
pub fn set(sock: impl AsFd, name: &str) -> io::Result<()> {
    Ok(sockopt::set_tcp_congestion(sock, name)?)
}

/// The algorithm a TCP socket runs.
pub fn get(sock: impl AsFd) -> io::Result<String> {
    Ok(sockopt::tcp_congestion(sock)?)
}

/// The algorithms the kernel has loaded, read under `root` (`/`, or a test's fake tree).
pub fn available(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join(AVAILABLE)).map(|s| s.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
}

/// The system's default algorithm, read under `root`.
pub fn system_default(root: &Path) -> Option<String> {
    std::fs::read_to_string(root.join(SYSTEM_DEFAULT)).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
