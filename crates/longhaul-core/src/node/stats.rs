//! STATS: the node's statistics and transfer table as the JSON document of docs/PROTOCOL.md.

use super::state::{self, Json};
use super::Inner;
use crate::rate::Bucket;
use std::sync::atomic::Ordering;

pub(super) fn stats_json(inner: &Inner) -> String {
    let st = &inner.state;
    let mut j = Json::default();
    j.raw("{");
    j.key("root").str(&inner.root.display().to_string()).key("listen").str(&inner.listen.to_string());
    j.key("auth").raw(if inner.opts.secret.is_some() { "true" } else { "false" });
    match st.capacity() {
        Some(c) => j.num("capacity", c).num("free", c.saturating_sub(st.stored()).saturating_sub(st.reserved())),
        None => j.key("capacity").raw("null").key("free").raw("null"),
    };
    let (parts, parts_bytes) = st.parts();
    j.num("stored", st.stored()).num("reserved", st.reserved()).num("parts", parts).num("partsBytes", parts_bytes);
    let active = st.active_rows();
    let recent = st.recent_rows();
    j.num("active", active.len()).num("completed", st.completed.load(Ordering::Relaxed)).num("failed", st.failed.load(Ordering::Relaxed));
    let peers = st.peer_bytes();
    j.num("bytesIn", peers.values().map(|p| p.bytes_in).sum::<u64>()).num("bytesOut", peers.values().map(|p| p.bytes_out).sum::<u64>());
    j.key("pool").raw("{");
    j.num("buffers", inner.pool.count())
        .num("available", inner.pool.available())
        .num("bufferBytes", inner.pool.buf_size())
        .key("locked")
        .raw(if inner.pool.locked() { "true" } else { "false" });
    j.raw("}");
    j.key("memory").raw("{");
    j.num("budget", inner.memory.limit()).num("held", inner.memory.held());
    j.raw("}");
    j.key("limits").raw("[");
    let mut limit = |scope: &str, peer: Option<String>, b: &Bucket| {
        j.item().raw("{").key("scope").str(scope).opt_str("peer", peer.as_deref());
        j.num("rate", b.rate()).num("passed", b.passed()).float("utilisation", b.utilisation()).raw("}");
    };
    if let Some(b) = &inner.total {
        limit("total", None, b);
    }
    for (ip, b) in &inner.peers {
        limit("peer", Some(ip.to_string()), b);
    }
    j.raw("]");
    j.key("peers").raw("[");
    for (peer, p) in &peers {
        j.item().raw("{").key("peer").str(peer).num("bytesIn", p.bytes_in).num("bytesOut", p.bytes_out).raw("}");
    }
    j.raw("]");
    j.key("errors").raw("{");
    for (code, n) in st.errors() {
        j.num(&code, n);
    }
    j.raw("}");
    let c = &inner.readv;
    j.key("readv").raw("{");
    j.num("requests", c.requests.load(Ordering::Relaxed))
        .num("segments", c.segments.load(Ordering::Relaxed))
        .num("bytes", c.bytes.load(Ordering::Relaxed))
        .num("reads", c.reads.load(Ordering::Relaxed));
    j.raw("}");
    j.key("connections").raw("{");
    j.num("open", inner.conns.open())
        .num("handshaking", inner.lobby.len())
        .num("max", inner.conns.max_total())
        .num("maxPerPeer", inner.conns.max_per_peer())
        .num("refused", inner.conns.refused())
        .num("evicted", inner.lobby.evicted());
    j.raw("}");
    j.key("transfers").raw("[");
    for r in &active {
        state::row_json(&mut j, r);
    }
    j.raw("]").key("recent").raw("[");
    for r in &recent {
        state::row_json(&mut j, r);
    }
    j.raw("]");
    j.opt_str("lastPlacement", inner.last_placement.lock().expect("placement lock").as_deref());
    j.num("filesLinked", inner.files_linked.load(Ordering::Relaxed)).num("filesRenamed", inner.files_renamed.load(Ordering::Relaxed));
    j.opt_str("lastFileCreation", inner.last_file_creation.lock().expect("file creation lock").as_deref());
    j.raw("}");
    j.finish()
}
