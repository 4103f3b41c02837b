//! A node's statistics as one value (`Server::stats`), and the JSON a STATS request is answered
//! with (docs/PROTOCOL.md, STATS_OK), written from that value so the in-process view and the
//! wire's cannot drift. Counts are a snapshot: each figure is read once, not all under one lock.

use std::sync::atomic::Ordering;

use super::state::{row_json, Json, TransferRow};
use super::Inner;
use crate::rate::Bucket;

/// The node's statistics and its transfer table.
#[derive(Clone, Debug)]
pub struct NodeStats {
    pub root: String,
    pub listen: String,
    pub auth: bool,
    pub capacity: Option<u64>,
    /// Capacity less what is stored and reserved; `None` without a capacity.
    pub free: Option<u64>,
    pub stored: u64,
    pub reserved: u64,
    /// Temporary `.part` files among `stored`, and their bytes.
    pub parts: u64,
    pub parts_bytes: u64,
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub pool: PoolStats,
    pub memory: MemoryStats,
    pub limits: Vec<LimitStats>,
    pub peers: Vec<PeerStats>,
    /// Failed transfers by error code, in code order.
    pub errors: Vec<(String, u64)>,
    pub readv: ReadvStats,
    pub connections: ConnectionStats,
    pub transfers: Vec<TransferRow>,
    pub recent: Vec<TransferRow>,
    pub last_placement: Option<String>,
    pub files_linked: u64,
    pub files_renamed: u64,
    pub last_file_creation: Option<String>,
    /// The congestion control set on the connections the node accepts, and why not BBR where
    /// `auto` could not have it.
    pub congestion: String,
    pub congestion_note: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PoolStats {
    pub buffers: u64,
    pub available: u64,
    pub buffer_bytes: u64,
    pub locked: bool,
}

#[derive(Clone, Debug)]
pub struct MemoryStats {
    pub budget: u64,
    pub held: u64,
}

/// A bandwidth limit: `scope` "total" (no peer) or "peer".
#[derive(Clone, Debug)]
pub struct LimitStats {
    pub scope: &'static str,
    pub peer: Option<String>,
    pub rate: u64,
    pub passed: u64,
    pub utilisation: f64,
}

#[derive(Clone, Debug)]
pub struct PeerStats {
    pub peer: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Clone, Debug)]
pub struct ReadvStats {
    pub requests: u64,
    pub segments: u64,
    pub bytes: u64,
    pub reads: u64,
}

#[derive(Clone, Debug)]
pub struct ConnectionStats {
    pub open: u64,
    pub handshaking: u64,
    pub max: u64,
    pub max_per_peer: u64,
    pub refused: u64,
    pub evicted: u64,
}

/// The node's statistics now.
pub(super) fn stats(inner: &Inner) -> NodeStats {
    let st = &inner.state;
    let (parts, parts_bytes) = st.parts();
    let transfers = st.active_rows();
    let recent = st.recent_rows();
    let peers = st.peer_bytes();
    let limit = |scope: &'static str, peer: Option<String>, b: &Bucket| LimitStats {
        scope,
        peer,
        rate: b.rate(),
        passed: b.passed(),
        utilisation: b.utilisation(),
    };
    let mut limits: Vec<LimitStats> = inner.total.iter().map(|b| limit("total", None, b)).collect();
    limits.extend(inner.peers.iter().map(|(ip, b)| limit("peer", Some(ip.to_string()), b)));
    let c = &inner.readv;
    NodeStats {
        root: inner.root.display().to_string(),
        listen: inner.listen.to_string(),
        auth: inner.opts.secret.is_some(),
        capacity: st.capacity(),
        free: st.capacity().map(|c| c.saturating_sub(st.stored()).saturating_sub(st.reserved())),
        stored: st.stored(),
        reserved: st.reserved(),
        parts,
        parts_bytes,
        active: transfers.len() as u64,
        completed: st.completed.load(Ordering::Relaxed),
        failed: st.failed.load(Ordering::Relaxed),
        bytes_in: peers.values().map(|p| p.bytes_in).sum(),
        bytes_out: peers.values().map(|p| p.bytes_out).sum(),
        pool: PoolStats {
            buffers: inner.pool.count() as u64,
            available: inner.pool.available() as u64,
            buffer_bytes: inner.pool.buf_size() as u64,
            locked: inner.pool.locked(),
        },
        memory: MemoryStats { budget: inner.memory.limit(), held: inner.memory.held() },
        limits,
        peers: peers.iter().map(|(peer, p)| PeerStats { peer: peer.clone(), bytes_in: p.bytes_in, bytes_out: p.bytes_out }).collect(),
        errors: st.errors().into_iter().collect(),
        readv: ReadvStats {
            requests: c.requests.load(Ordering::Relaxed),
            segments: c.segments.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            reads: c.reads.load(Ordering::Relaxed),
        },
        connections: ConnectionStats {
            open: inner.conns.open() as u64,
            handshaking: inner.lobby.len() as u64,
            max: inner.conns.max_total() as u64,
            max_per_peer: inner.conns.max_per_peer() as u64,
            refused: inner.conns.refused(),
            evicted: inner.lobby.evicted(),
        },
        transfers,
        recent,
        last_placement: inner.last_placement.lock().expect("placement lock").clone(),
        files_linked: inner.files_linked.load(Ordering::Relaxed),
        files_renamed: inner.files_renamed.load(Ordering::Relaxed),
        last_file_creation: inner.last_file_creation.lock().expect("file creation lock").clone(),
        congestion: inner.congestion_name.clone(),
        congestion_note: inner.congestion.note.clone(),
    }
}

fn flag(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

impl NodeStats {
    /// The STATS_OK document: these fields, in this order, with camelCase keys.
    pub fn to_json(&self) -> String {
        let mut j = Json::default();
        j.raw("{");
        j.key("root").str(&self.root).key("listen").str(&self.listen);
        j.key("auth").raw(flag(self.auth));
        match (self.capacity, self.free) {
            (Some(c), f) => j.num("capacity", c).num("free", f.unwrap_or(0)),
            (None, _) => j.key("capacity").raw("null").key("free").raw("null"),
        };
        j.num("stored", self.stored).num("reserved", self.reserved).num("parts", self.parts).num("partsBytes", self.parts_bytes);
        j.num("active", self.active).num("completed", self.completed).num("failed", self.failed);
        j.num("bytesIn", self.bytes_in).num("bytesOut", self.bytes_out);
        let p = &self.pool;
        j.key("pool").raw("{");
        j.num("buffers", p.buffers).num("available", p.available).num("bufferBytes", p.buffer_bytes).key("locked").raw(flag(p.locked));
        j.raw("}");
        j.key("memory").raw("{");
        j.num("budget", self.memory.budget).num("held", self.memory.held);
        j.raw("}");
        j.key("limits").raw("[");
        for l in &self.limits {
            j.item().raw("{").key("scope").str(l.scope).opt_str("peer", l.peer.as_deref());
            j.num("rate", l.rate).num("passed", l.passed).float("utilisation", l.utilisation).raw("}");
        }
        j.raw("]");
        j.key("peers").raw("[");
        for p in &self.peers {
            j.item().raw("{").key("peer").str(&p.peer).num("bytesIn", p.bytes_in).num("bytesOut", p.bytes_out).raw("}");
        }
        j.raw("]");
        j.key("errors").raw("{");
        for (code, n) in &self.errors {
            j.num(code, n);
        }
        j.raw("}");
        let r = &self.readv;
        j.key("readv").raw("{");
        j.num("requests", r.requests).num("segments", r.segments).num("bytes", r.bytes).num("reads", r.reads);
        j.raw("}");
        let c = &self.connections;
        j.key("connections").raw("{");
        j.num("open", c.open)
            .num("handshaking", c.handshaking)
            .num("max", c.max)
            .num("maxPerPeer", c.max_per_peer)
            .num("refused", c.refused)
            .num("evicted", c.evicted);
        j.raw("}");
        j.key("transfers").raw("[");
        for r in &self.transfers {
            row_json(&mut j, r);
        }
        j.raw("]").key("recent").raw("[");
        for r in &self.recent {
            row_json(&mut j, r);
        }
        j.raw("]");
        j.opt_str("lastPlacement", self.last_placement.as_deref());
        j.num("filesLinked", self.files_linked).num("filesRenamed", self.files_renamed);
        j.opt_str("lastFileCreation", self.last_file_creation.as_deref());
        j.key("congestion").str(&self.congestion);
        j.opt_str("congestionNote", self.congestion_note.as_deref());
        j.raw("}");
        j.finish()
    }
}
