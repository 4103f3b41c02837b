//! TLS for every connection of a node that turns it on (rustls, TLS 1.3 only, ring).
//!
//! A rustls session is one state machine per connection, but the engine reads a connection on
//! one thread while another writes it (the control connection's watcher) and sends blocks with
//! sendfile. So TLS ends at a relay, as stunnel does: after the handshake a relay thread owns
//! the TCP socket and the session, and the engine gets the other end of a Unix socket pair.
//! Everything the engine does to a socket (cloned descriptors, timeouts, shutdown, sendfile)
//! works on it unchanged, and the plaintext never leaves the host. The cost is one more copy of
//! every byte through the pair, the encryption itself, and a relay thread per connection
//! (bench/RESULTS.md, "TLS").
//!
//! A node with TLS on reads the first byte of each connection: 0x16 (a TLS handshake record)
//! starts TLS; anything else is answered with ERROR `E_TLS` in plaintext and closed. A client
//! that asked for TLS never falls back to plaintext: a failed handshake is `E_TLS`.

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// The first byte of a TLS record that carries a handshake message (a ClientHello).
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// Names a self-signed certificate is made for when the node is given none.
pub fn default_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(h) = rustix::system::uname().nodename().to_str() {
        if !h.is_empty() && !names.iter().any(|n| n == h) {
            names.push(h.to_owned());
        }
    }
    names
}

/// `sha256:` and 64 lowercase hex digits, the form fingerprints are printed and pinned in.
pub fn fingerprint_of(der: &[u8]) -> String {
    imp::sha256(der).map(|d| format!("sha256:{}", crate::util::hex(&d))).unwrap_or_default()
}

/// Parses a pinned fingerprint: `sha256:` optional, hex digits with optional `:` between bytes.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32]> {
    let bad = || Error::Usage(format!("TLS fingerprint {s:?} is not sha256: and 64 hex digits"));
    let hex: String = s.trim().strip_prefix("sha256:").unwrap_or(s.trim()).chars().filter(|&c| c != ':').collect();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// How a client checks the node it connects to: the node certificate's SHA-256 (`pin`, for a
/// self-signed node) or a PEM file of CA certificates it must chain to for the host name
/// dialled (`ca`). Exactly one is required; there is no unchecked mode.
#[derive(Clone)]
pub struct ClientTls {
    inner: imp::Client,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    pub fn new(pin: Option<&str>, ca: Option<&Path>) -> Result<ClientTls> {
        let inner = match (pin, ca) {
            (Some(p), None) => imp::Client::pinned(parse_fingerprint(p)?)?,
            (None, Some(ca)) => imp::Client::with_ca(ca)?,
            (Some(_), Some(_)) => return Err(Error::Usage("give a TLS fingerprint to pin or a CA file, not both".into())),
            (None, None) => {
                return Err(Error::Usage(
                    "TLS needs the node's certificate fingerprint (--tls-pin, tlsPin) or a CA file (--tls-ca, tlsCa)".into(),
                ))
            }
        };
        Ok(ClientTls { inner })
    }
}

/// A node's certificate and key, loaded from PEM files or made at start (self-signed).
pub struct ServerTls {
    inner: imp::Server,
    fingerprint: String,
    generated: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("fingerprint", &self.fingerprint).field("self_signed", &self.generated).finish()
    }
}

impl ServerTls {
    pub fn from_pem(cert: &Path, key: &Path) -> Result<ServerTls> {
        let (inner, leaf) = imp::Server::from_pem(cert, key)?;
        Ok(ServerTls { inner, fingerprint: fingerprint_of(&leaf), generated: false })
    }

    /// A fresh self-signed certificate (ECDSA P-256) for `names`; clients pin its fingerprint.
    pub fn generate(names: Vec<String>) -> Result<ServerTls> {
        let (inner, leaf) = imp::Server::generate(names)?;
        Ok(ServerTls { inner, fingerprint: fingerprint_of(&leaf), generated: true })
    }

    /// The certificate's SHA-256, `sha256:` and 64 hex digits.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn self_signed(&self) -> bool {
        self.generated
    }
}

/// Runs the client side of the handshake on a connected socket (`addr` gives the name checked
/// against a CA-signed certificate) and returns the engine's end of the relay.
pub fn connect(sock: TcpStream, addr: &str, tls: &ClientTls, timeout: Duration) -> Result<TcpStream> {
    tls.inner.connect(sock, addr, timeout)
}

/// Runs the node side of the handshake and returns the engine's end of the relay.
pub fn accept(sock: TcpStream, tls: &ServerTls, timeout: Duration) -> Result<TcpStream> {
    tls.inner.accept(sock, timeout)
}

/// Whether the next byte on `sock` starts a TLS handshake (peeked, not consumed). `None`: the
/// peer closed without sending anything.
pub fn starts_tls(sock: &TcpStream, timeout: Duration) -> Result<Option<bool>> {
    sock.set_read_timeout(Some(timeout)).map_err(Error::net("setting a timeout"))?;
    let mut b = [0u8; 1];
    loop {
        match sock.peek(&mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0] == HANDSHAKE_RECORD)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::net("reading the first byte")(e)),
        }
    }
}

/// The host part of `host:port` or `[v6]:port`, as a certificate names it.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((h, _)) => h,
        None => addr,
    }
}

#[cfg(feature = "tls")]
mod imp {
    use std::io::{self, Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{ring as provider, CryptoProvider};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
    use rustls::{
        ClientConfig, ClientConnection, Connection, DigitallySignedStruct, RootCertStore, ServerConfig, ServerConnection, SignatureScheme,
    };

    use crate::error::{Error, Result};

    /// Plaintext read from the engine per TLS write: sixteen full records.
    const RELAY_CHUNK: usize = 256 * 1024;

    pub fn sha256(der: &[u8]) -> Option<[u8; 32]> {
        ring::digest::digest(&ring::digest::SHA256, der).as_ref().try_into().ok()
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(provider::default_provider())
    }

    fn tls_error(what: &str) -> impl FnOnce(rustls::Error) -> Error + '_ {
        move |e| Error::Tls(format!("{what}: {e}"))
    }

    #[derive(Clone)]
    pub struct Client {
        config: Arc<ClientConfig>,
    }

    impl Client {
        pub fn pinned(sha256: [u8; 32]) -> Result<Client> {
            let verifier = Arc::new(Pinned { sha256, provider: provider() });
            let config = ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(tls_error("TLS configuration"))?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            Ok(Client { config: Arc::new(config) })
        }

        pub fn with_ca(ca: &Path) -> Result<Client> {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| Error::Usage(format!("CA file {}: {e}", ca.display())))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Usage(format!("CA file {}: {e}", ca.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::Usage(format!("CA file {} holds no usable certificate", ca.display())));
            }
            let config = ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(tls_error("TLS configuration"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Client { config: Arc::new(config) })
        }

        pub fn connect(&self, mut sock: TcpStream, addr: &str, timeout: Duration) -> Result<TcpStream> {
            let host = super::host_of(addr);
            let name = ServerName::try_from(host.to_owned()).map_err(|_| Error::Usage(format!("{host:?} is not a host name")))?;
            let mut conn = ClientConnection::new(Arc::clone(&self.config), name).map_err(tls_error("TLS"))?;
            handshake(&mut sock, &mut conn, timeout)?;
            relay(sock, conn.into())
        }
    }

    pub struct Server {
        config: Arc<ServerConfig>,
    }

    impl Server {
        fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Server> {
            let mut config = ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(tls_error("TLS configuration"))?
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .map_err(tls_error("the certificate and key"))?;
            // Every connection is a fresh session; tickets would only cost bytes.
            config.send_tls13_tickets = 0;
            Ok(Server { config: Arc::new(config) })
        }

        pub fn from_pem(cert: &Path, key: &Path) -> Result<(Server, Vec<u8>)> {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| Error::Usage(format!("certificate file {}: {e}", cert.display())))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Usage(format!("certificate file {}: {e}", cert.display())))?;
            let Some(leaf) = chain.first().map(|c| c.to_vec()) else {
                return Err(Error::Usage(format!("certificate file {} holds no certificate", cert.display())));
            };
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Usage(format!("key file {}: {e}", key.display())))?;
            Ok((Server::new(chain, key)?, leaf))
        }

        pub fn generate(names: Vec<String>) -> Result<(Server, Vec<u8>)> {
            let made = rcgen::generate_simple_self_signed(names).map_err(|e| Error::Tls(format!("making a certificate: {e}")))?;
            let leaf = made.cert.der().clone();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
            let der = leaf.to_vec();
            Ok((Server::new(vec![leaf], key)?, der))
        }

        pub fn accept(&self, mut sock: TcpStream, timeout: Duration) -> Result<TcpStream> {
            let mut conn = ServerConnection::new(Arc::clone(&self.config)).map_err(tls_error("TLS"))?;
            handshake(&mut sock, &mut conn, timeout)?;
            relay(sock, conn.into())
        }
    }

    /// Checks the node's certificate against a pinned SHA-256 (no names, no chain: the pin is
    /// the trust), and the handshake's signatures with that certificate's key as usual.
    #[derive(Debug)]
    struct Pinned {
        sha256: [u8; 32],
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            if sha256(end_entity) == Some(self.sha256) {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(format!(
                    "the node's certificate is {}, not the pinned fingerprint",
                    super::fingerprint_of(end_entity)
                )))
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider.signature_verification_algorithms.supported_schemes()
        }
    }

    /// The socket during a handshake: every read and write gets what is left of one deadline,
    /// so a peer that sends a byte a second cannot keep a handshake open past it.
    struct Timed<'a> {
        sock: &'a TcpStream,
        until: Instant,
    }

    impl Timed<'_> {
        fn left(&self) -> io::Result<Duration> {
            let left = self.until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(io::ErrorKind::TimedOut.into())
            } else {
                Ok(left)
            }
        }
    }

    impl Read for Timed<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.sock.set_read_timeout(Some(self.left()?))?;
            (&*self.sock).read(buf)
        }
    }

    impl Write for Timed<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.sock.set_write_timeout(Some(self.left()?))?;
            (&*self.sock).write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn handshake<C, S>(sock: &mut TcpStream, conn: &mut C, timeout: Duration) -> Result<()>
    where
        C: std::ops::DerefMut<Target = rustls::ConnectionCommon<S>>,
        S: rustls::SideData,
    {
        let mut timed = Timed { sock, until: Instant::now() + timeout };
        while conn.is_handshaking() {
            match conn.complete_io(&mut timed) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                    return Err(Error::Timeout("the TLS handshake"))
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    let plaintext =
                        matches!(e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()), Some(rustls::Error::InvalidMessage(_)));
                    let hint = if plaintext { " (the peer does not speak TLS: is TLS on at both ends?)" } else { "" };
                    return Err(Error::Tls(format!("handshake: {e}{hint}")));
                }
                Err(e) => {
                    return Err(Error::Tls(format!(
                        "the peer closed the connection during the TLS handshake ({e}); is TLS on at both ends?"
                    )))
                }
            }
        }
        // The alert or Finished the handshake may leave queued.
        while conn.wants_write() {
            conn.write_tls(&mut timed).map_err(|e| Error::Tls(format!("handshake: {e}")))?;
        }
        sock.set_read_timeout(None).map_err(Error::net("setting a timeout"))?;
        sock.set_write_timeout(None).map_err(Error::net("setting a timeout"))?;
        Ok(())
    }

    /// Starts the relay thread for an established session and returns the engine's end. The
    /// engine's end is a Unix stream socket held as a `TcpStream`: std's `TcpStream` is a socket
    /// descriptor, and read, write, shutdown, timeouts, `try_clone` and sendfile behave the same
    /// on it (its addresses do not: callers take the peer's address from the TCP socket first).
    fn relay(tcp: TcpStream, mut conn: Connection) -> Result<TcpStream> {
        let (engine, ours) = UnixStream::pair().map_err(Error::net("creating a socket pair"))?;
        // The relay reads the engine only once the previous chunk is on the wire: that bounds
        // what rustls buffers, so its own limit (which makes writes partial) is not needed.
        conn.set_buffer_limit(None);
        std::thread::Builder::new()
            .name("lh-tls".into())
            .spawn(move || {
                let _ = pump(&tcp, &ours, &mut conn);
                let _ = tcp.shutdown(Shutdown::Both);
                let _ = ours.shutdown(Shutdown::Both);
            })
            .map_err(|e| Error::io("spawn", b"TLS relay thread", e))?;
        Ok(TcpStream::from(OwnedFd::from(engine)))
    }

    /// Moves bytes both ways until both directions are closed, or the engine has closed its end
    /// (POLLHUP on the pair), or either side fails. Backpressure both ways: the peer is read only
    /// when the engine has taken everything decrypted so far, the engine only when everything
    /// encrypted so far is on the wire.
    fn pump(tcp: &TcpStream, plain: &UnixStream, conn: &mut Connection) -> io::Result<()> {
        use rustix::event::{poll, PollFd, PollFlags};
        tcp.set_nonblocking(true)?;
        plain.set_nonblocking(true)?;
        let mut chunk = vec![0u8; RELAY_CHUNK];
        let mut out: Vec<u8> = Vec::new();
        let mut out_at = 0;
        let (mut engine_done, mut peer_done) = (false, false);
        // The handshake's last read may have brought the peer's first records with it (a
        // client's HELLO right behind its Finished): they are in rustls, not in the socket.
        conn.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        match conn.reader().read_to_end(&mut out) {
            Ok(_) => peer_done = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        loop {
            while conn.wants_write() {
                match conn.write_tls(&mut &*tcp) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            while out_at < out.len() {
                match (&*plain).write(&out[out_at..]) {
                    Ok(n) => out_at += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if out_at == out.len() {
                out.clear();
                out_at = 0;
                if peer_done {
                    let _ = plain.shutdown(Shutdown::Write);
                }
            }
            if engine_done && peer_done && !conn.wants_write() && out.is_empty() {
                return Ok(());
            }
            let tcp_in = !peer_done && out.is_empty();
            let plain_in = !engine_done && !conn.wants_write();
            let mut tcp_flags = PollFlags::empty();
            if tcp_in {
                tcp_flags |= PollFlags::IN;
            }
            if conn.wants_write() {
                tcp_flags |= PollFlags::OUT;
            }
            let mut plain_flags = PollFlags::empty();
            if plain_in {
                plain_flags |= PollFlags::IN;
            }
            if !out.is_empty() {
                plain_flags |= PollFlags::OUT;
            }
            // The pair is always watched (for HUP: the engine is gone); the TCP socket only when
            // there is something to do on it, so that a peer's HUP cannot spin this loop.
            let mut fds = vec![PollFd::new(plain, plain_flags)];
            if !tcp_flags.is_empty() {
                fds.push(PollFd::new(tcp, tcp_flags));
            }
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let plain_ev = fds[0].revents();
            let tcp_ev = fds.get(1).map(|f| f.revents()).unwrap_or(PollFlags::empty());
            if plain_ev.contains(PollFlags::HUP) && !plain_ev.contains(PollFlags::IN) {
                return Ok(());
            }
            if tcp_in && !tcp_ev.is_empty() {
                match conn.read_tls(&mut &*tcp) {
                    Ok(0) => peer_done = true,
                    Ok(_) => {
                        if let Err(e) = conn.process_new_packets() {
                            // The alert that tells the peer why.
                            let _ = conn.write_tls(&mut &*tcp);
                            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                        }
                        match conn.reader().read_to_end(&mut out) {
                            Ok(_) => peer_done = true,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if plain_in && !plain_ev.is_empty() {
                match (&*plain).read(&mut chunk) {
                    Ok(0) => {
                        engine_done = true;
                        conn.send_close_notify();
                    }
                    Ok(n) => conn.writer().write_all(&chunk[..n])?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

#[cfg(not(feature = "tls"))]
mod imp {
    use std::net::TcpStream;
    use std::path::Path;
    use std::time::Duration;

    use crate::error::{Error, Result};

    fn off() -> Error {
        Error::Tls("this build of longhaul has no TLS (the `tls` cargo feature is off)".into())
    }

    pub fn sha256(_: &[u8]) -> Option<[u8; 32]> {
        None
    }

    #[derive(Clone)]
    pub enum Client {}

    impl Client {
        pub fn pinned(_: [u8; 32]) -> Result<Client> {
            Err(off())
        }
        pub fn with_ca(_: &Path) -> Result<Client> {
            Err(off())
        }
        pub fn connect(&self, _: TcpStream, _: &str, _: Duration) -> Result<TcpStream> {
            match *self {}
        }
    }

    pub enum Server {}

    impl Server {
        pub fn from_pem(_: &Path, _: &Path) -> Result<(Server, Vec<u8>)> {
            Err(off())
        }
        pub fn generate(_: Vec<String>) -> Result<(Server, Vec<u8>)> {
            Err(off())
        }
        pub fn accept(&self, _: TcpStream, _: Duration) -> Result<TcpStream> {
            match *self {}
        }
    }
}

#[cfg(test)]
mod tests;
