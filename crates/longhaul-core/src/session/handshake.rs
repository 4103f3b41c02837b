//! The handshake every connection starts with — HELLO, HELLO_OK and, when the node has a
//! token, AUTH / AUTH_OK — both halves, and the feature negotiation that rides on it. The
//! client half runs on a blocking socket; the node half is a pair of pure steps the node's
//! lobby drives a frame at a time (node/conn.rs), so neither half is written twice.

use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::session::turns::Turns;
use crate::sys::net;
use crate::sys::tls::ClientTls;
use crate::wire::auth::{self, Secret};
use crate::wire::frame::{self, Limits, Msg, Nonce, Token};

/// What the node said at HELLO_OK, its features already cut to those the client asked for.
#[derive(Clone, Copy, Debug)]
pub struct Hello {
    pub features: u64,
    pub limits: Limits,
    /// The round trips the handshake took: 1, or 2 with AUTH (1 when AUTH_OK is left to
    /// `proof`'s reader).
    pub round_trips: u32,
    /// With `open_pipelined` and a token: the proof the node's AUTH_OK must carry, still
    /// unread; the caller reads it (`confirm`) before it trusts any other answer.
    pub proof: Option<[u8; 32]>,
}

/// Opens a session's `streams` data connections all at once and introduces each with
/// DATA_HELLO: one after the other, a long link would cost a round trip per stream before the
/// first block (0.7 s for 8 streams at 100 ms). `connect` makes one connection; the sockets
/// come back in stream order, or the first error.
pub fn attach_streams(streams: u16, token: Token, connect: &(dyn Fn() -> Result<TcpStream> + Sync)) -> Result<Vec<TcpStream>> {
    introduce(open_streams(streams, connect)?, token)
}

/// `attach_streams`' first half: the connections, opened at once, not yet introduced (a sender
/// opens them while its manifest exchange runs, before it has the session's token).
pub fn open_streams(streams: u16, connect: &(dyn Fn() -> Result<TcpStream> + Sync)) -> Result<Vec<TcpStream>> {
    if streams <= 1 {
        return (0..streams).map(|_| connect()).collect();
    }
    std::thread::scope(|s| {
        let opening: Vec<_> = (0..streams).map(|_| s.spawn(connect)).collect();
        opening.into_iter().map(|t| t.join().unwrap_or_else(|p| Err(crate::panic::from_payload("connect", p)))).collect()
    })
}

/// `attach_streams`' second half: DATA_HELLO with the session's token on each, stream i on the
/// i-th.
pub fn introduce(mut sockets: Vec<TcpStream>, token: Token) -> Result<Vec<TcpStream>> {
    for (stream, s) in (0u16..).zip(sockets.iter_mut()) {
        frame::write_msg(s, &Msg::DataHello { token, stream })?;
    }
    Ok(sockets)
}

/// The features a transfer asks for: block checksums always, BLAKE3 block digests (a node
/// offers them, the sender uses them when asked), the receiver's disk figures in SUMMARY, a resume only when `resume`, whole-file
/// verification only when `verify_full`.
pub fn wanted(resume: bool, verify_full: bool) -> u64 {
    let mut f = frame::FEATURE_XXH3
        | frame::FEATURE_BLAKE3
        | frame::FEATURE_DISK_STATS
        | frame::FEATURE_HARD_LINKS
        | frame::FEATURE_SPARSE
        | frame::FEATURE_OWNER
        | frame::FEATURE_XATTRS;
    if resume {
        f |= frame::FEATURE_RESUME;
    }
    if verify_full {
        f |= frame::FEATURE_VERIFY_FULL;
    }
    f
}

/// What a connection for requests (LIST, READV, STATS, TREE_SUMS) asks for.
pub const REQUEST_FEATURES: u64 = frame::FEATURE_XXH3 | frame::FEATURE_REMOTE_SUMS;

/// Fails when the node does not offer a feature the transfer cannot go without.
pub fn require(hello: &Hello, features: u64) -> Result<()> {
    let missing = features & !hello.features;
    if missing & frame::FEATURE_BLAKE3 != 0 {
        return Err(Error::Protocol("the node does not check BLAKE3 block digests".into()));
    }
    if missing & frame::FEATURE_CHECKSUM != 0 {
        return Err(Error::Unsupported { flag: "--checksum", what: "change detection by content" });
    }
    if missing & frame::FEATURE_DELETE != 0 {
        return Err(Error::Unsupported { flag: "--delete", what: "deleting what the source does not hold" });
    }
    if missing & frame::FEATURE_DRY_RUN != 0 {
        return Err(Error::Unsupported { flag: "--dry-run", what: "a dry run" });
    }
    if missing & frame::FEATURE_VERIFY_FULL != 0 {
        return Err(Error::Protocol("the node does not verify whole files (verify: full)".into()));
    }
    if missing & frame::FEATURE_DISCARD != 0 {
        return Err(Error::Unsupported { flag: "longhaul bench", what: "network-only sessions" });
    }
    Ok(())
}

/// The client half. A client that holds a token insists that the node prove it holds it too,
/// so a node that skips authentication cannot pose as the real one.
pub fn client(sock: &mut TcpStream, secret: Option<&Secret>, features: u64) -> Result<Hello> {
    shake(sock, secret, features, false)
}

/// `client` whose AUTH_OK is not waited for: the caller's next frames (a push's MANIFEST)
/// follow AUTH at once, a round trip less, and it reads the node's proof with `confirm` before
/// the node's answer to them. What goes before the proof is checked is the offer (names and
/// sizes), never file data: docs/SECURITY.md says why that is no new exposure.
fn shake(sock: &mut TcpStream, secret: Option<&Secret>, features: u64, pipelined: bool) -> Result<Hello> {
    let sock = &mut Turns::new(sock);
    let ours = auth::nonce()?;
    frame::write_msg(sock, &Msg::Hello { min: frame::VERSION_MIN, max: frame::VERSION_MAX, features, nonce: ours })?;
    let (offered, limits, wants_auth, theirs) = match frame::expect_reply(sock, 0)? {
        Msg::HelloOk { features, limits, auth, nonce, .. } => (features, limits, auth, nonce),
        m => return Err(m.unexpected("HELLO_OK")),
    };
    match (wants_auth, secret) {
        (false, None) => {}
        (false, Some(_)) => {
            return Err(Error::Auth("a token was given but the node does not authenticate; it may not be the node you meant"))
        }
        (true, None) => {
            return Err(Error::Auth("the node requires a token: give --token-file FILE (tokenFile in the SDK) or set LONGHAUL_TOKEN"))
        }
        (true, Some(s)) => {
            frame::write_msg(sock, &Msg::Auth { mac: s.client_proof(&ours, &theirs) })?;
            let proof = s.node_proof(&ours, &theirs);
            if pipelined {
                return Ok(Hello { features: offered & features, limits, round_trips: sock.count(), proof: Some(proof) });
            }
            confirm(sock, &proof)?;
        }
    }
    Ok(Hello { features: offered & features, limits, round_trips: sock.count(), proof: None })
}

/// Reads AUTH_OK and checks the node's proof (or returns the node's ERROR, E_AUTH for a wrong
/// token).
pub fn confirm(sock: &mut impl std::io::Read, proof: &[u8; 32]) -> Result<()> {
    match frame::expect_reply(sock, 0)? {
        Msg::AuthOk { mac } if Secret::check(proof, &mac) => Ok(()),
        Msg::AuthOk { .. } => Err(Error::Auth("the node could not prove it holds the token")),
        m => Err(m.unexpected("AUTH_OK")),
    }
}

/// How a client reaches a node.
#[derive(Clone, Copy)]
pub struct Dial<'a> {
    pub addr: &'a str,
    pub secret: Option<&'a Secret>,
    pub tls: Option<&'a ClientTls>,
    pub connect_timeout: Duration,
    /// Each reply of the node, and each write to it, must come within this.
    pub io_timeout: Duration,
}

/// Connects (over TLS when asked), shakes hands asking for `features`, and returns the
/// control connection, the node's address and what it said.
pub fn open(dial: &Dial<'_>, features: u64) -> Result<(TcpStream, IpAddr, Hello)> {
    dial_node(dial, features, false)
}

/// `open` for a session whose next frames need no answer from the node first (a push's offer):
/// AUTH_OK is left unread, `Hello::proof` holds what it must prove.
pub fn open_pipelined(dial: &Dial<'_>, features: u64) -> Result<(TcpStream, IpAddr, Hello)> {
    dial_node(dial, features, true)
}

fn dial_node(dial: &Dial<'_>, features: u64, pipelined: bool) -> Result<(TcpStream, IpAddr, Hello)> {
    let (mut sock, peer) = net::connect_to(dial.addr, dial.connect_timeout, dial.tls)?;
    sock.set_read_timeout(Some(dial.io_timeout)).map_err(Error::net("setting a timeout"))?;
    sock.set_write_timeout(Some(dial.io_timeout)).map_err(Error::net("setting a timeout"))?;
    let hello = shake(&mut sock, dial.secret, features, pipelined)?;
    Ok((sock, peer, hello))
}

/// The node half, step one: a client's HELLO answered with HELLO_OK (the node's features and
/// limits, whether it wants AUTH, and its nonce, which AUTH's proofs cover).
pub fn answer_hello(min: u16, max: u16, limits: Limits, wants_auth: bool) -> Result<(Msg, Nonce)> {
    if max < frame::VERSION_MIN || min > frame::VERSION_MAX || min > max {
        return Err(Error::Version { ours_min: frame::VERSION_MIN, ours_max: frame::VERSION_MAX, peer_min: min, peer_max: max });
    }
    let ours = auth::nonce()?;
    let ok = Msg::HelloOk { version: max.min(frame::VERSION_MAX), features: frame::FEATURES, limits, auth: wants_auth, nonce: ours };
    Ok((ok, ours))
}

/// The node half, step two: the client's AUTH proof checked, AUTH_OK (the node's proof) to
/// send back. A wrong token learns nothing but E_AUTH.
pub fn answer_auth(secret: &Secret, client: &Nonce, ours: &Nonce, mac: &[u8; 32]) -> Result<Msg> {
    if !Secret::check(&secret.client_proof(client, ours), mac) {
        return Err(Error::Auth("wrong token"));
    }
    Ok(Msg::AuthOk { mac: secret.node_proof(client, ours) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_32_an_older_node_without_change_detection_is_a_version_error_naming_the_flag() {
        let limits = Limits { max_streams: 4, max_block: 1 << 20, max_manifest: 1 << 20, max_readv_segments: 1, max_readv_segment: 1 };
        let older = Hello { features: frame::FEATURES & !frame::FEATURE_CHECKSUM, limits, round_trips: 1, proof: None };
        let e = require(&older, frame::FEATURE_CHECKSUM).unwrap_err();
        assert_eq!(e.code(), "E_VERSION");
        assert!(e.to_string().contains("--checksum"), "{e}");
        assert!(require(&Hello { features: frame::FEATURES, ..older }, frame::FEATURE_CHECKSUM).is_ok());
    }
}
