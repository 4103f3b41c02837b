//! Frames as bytes: `Msg::encode`, the one writer of every frame (frame.rs has the types,
//! decode.rs the reader).

use super::*;

impl Msg {
    /// The whole frame: length, type, body.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&[0; 4]);
        b.push(self.frame_type() as u8);
        match self {
            Msg::Hello { min, max, features, nonce } => {
                b.extend_from_slice(&MAGIC);
                b.extend_from_slice(&min.to_le_bytes());
                b.extend_from_slice(&max.to_le_bytes());
                b.extend_from_slice(&features.to_le_bytes());
                b.extend_from_slice(nonce);
            }
            Msg::HelloOk { version, features, limits, auth, nonce } => {
                b.extend_from_slice(&version.to_le_bytes());
                b.extend_from_slice(&features.to_le_bytes());
                b.extend_from_slice(&limits.max_streams.to_le_bytes());
                b.extend_from_slice(&limits.max_block.to_le_bytes());
                b.extend_from_slice(&limits.max_manifest.to_le_bytes());
                b.extend_from_slice(&limits.max_readv_segments.to_le_bytes());
                b.extend_from_slice(&limits.max_readv_segment.to_le_bytes());
                b.push(*auth as u8);
                b.extend_from_slice(nonce);
            }
            Msg::Auth { mac } | Msg::AuthOk { mac } => b.extend_from_slice(mac),
            Msg::Get { path, streams, block_size, keep } => {
                put_bytes16(&mut b, path);
                b.extend_from_slice(&streams.to_le_bytes());
                b.extend_from_slice(&block_size.to_le_bytes());
                if *keep != 0 {
                    b.push(*keep);
                }
            }
            Msg::List { path } => put_bytes16(&mut b, path),
            Msg::Listing { last, entries } => {
                b.push(*last as u8);
                b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
                for e in entries {
                    b.push(e.kind);
                    put_bytes16(&mut b, &e.name);
                    b.extend_from_slice(&e.mode.to_le_bytes());
                    b.extend_from_slice(&e.size.to_le_bytes());
                    b.extend_from_slice(&e.mtime_ns.to_le_bytes());
                }
            }
            Msg::Readv { paths, segments } => {
                b.extend_from_slice(&(paths.len() as u16).to_le_bytes());
                for p in paths {
                    put_bytes16(&mut b, p);
                }
                b.extend_from_slice(&(segments.len() as u32).to_le_bytes());
                for s in segments {
                    b.extend_from_slice(&s.file.to_le_bytes());
                    b.extend_from_slice(&s.offset.to_le_bytes());
                    b.extend_from_slice(&s.len.to_le_bytes());
                }
            }
            Msg::ReadvData { results } => {
                b.extend_from_slice(&(results.len() as u32).to_le_bytes());
                for r in results {
                    b.extend_from_slice(&r.len.to_le_bytes());
                    b.push(r.code.len().min(255) as u8);
                    b.extend_from_slice(&r.code.as_bytes()[..r.code.len().min(255)]);
                }
            }
            Msg::Stats => {}
            Msg::StatsOk { json } => b.extend_from_slice(json.as_bytes()),
            Msg::Copy { to, src, dest, streams, block_size } => {
                put_bytes16(&mut b, to.as_bytes());
                put_bytes16(&mut b, src);
                put_bytes16(&mut b, dest);
                b.extend_from_slice(&streams.to_le_bytes());
                b.extend_from_slice(&block_size.to_le_bytes());
            }
            Msg::CopyProgress { bytes_done, bytes_total, files_done, files_total } => {
                for v in [bytes_done, bytes_total, files_done, files_total] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
            }
            Msg::Manifest { dest, streams, block_size, index } => {
                b.extend_from_slice(&(dest.len() as u16).to_le_bytes());
                b.extend_from_slice(dest);
                b.extend_from_slice(&streams.to_le_bytes());
                b.extend_from_slice(&block_size.to_le_bytes());
                b.extend_from_slice(index);
            }
            Msg::Ready { token, streams } => {
                b.extend_from_slice(token);
                b.extend_from_slice(&streams.to_le_bytes());
            }
            Msg::Plan { nblocks, ranges } => {
                b.extend_from_slice(&nblocks.to_le_bytes());
                b.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
                for (first, end) in ranges {
                    b.extend_from_slice(&first.to_le_bytes());
                    b.extend_from_slice(&end.to_le_bytes());
                }
            }
            Msg::DataHello { token, stream } => {
                b.extend_from_slice(token);
                b.extend_from_slice(&stream.to_le_bytes());
            }
            Msg::Block { offset, len, xxh3 } => {
                b.extend_from_slice(&offset.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(&xxh3.to_le_bytes());
            }
            Msg::Bench { streams, block_size, size } => {
                b.extend_from_slice(&streams.to_le_bytes());
                b.extend_from_slice(&block_size.to_le_bytes());
                b.extend_from_slice(&size.to_le_bytes());
            }
            Msg::BlockRaw { offset, len } => {
                b.extend_from_slice(&offset.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
            }
            Msg::BlockB3 { offset, len, xxh3, blake3 } => {
                b.extend_from_slice(&offset.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(&xxh3.to_le_bytes());
                b.extend_from_slice(blake3);
            }
            Msg::StreamsOpened { count } => b.extend_from_slice(&count.to_le_bytes()),
            Msg::Piece { offset, len, xxh3, blake3 } => {
                b.extend_from_slice(&offset.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(&xxh3.to_le_bytes());
                if let Some(d) = blake3 {
                    b.extend_from_slice(d);
                }
            }
            Msg::Held { last, ranges } => {
                b.push(u8::from(*last));
                b.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
                for (first, end) in ranges {
                    b.extend_from_slice(&first.to_le_bytes());
                    b.extend_from_slice(&end.to_le_bytes());
                }
            }
            Msg::StreamEnd { blocks, bytes } | Msg::Done { blocks, bytes } => {
                b.extend_from_slice(&blocks.to_le_bytes());
                b.extend_from_slice(&bytes.to_le_bytes());
            }
            Msg::Sums { mode, digests } => {
                b.push(*mode);
                b.extend_from_slice(&(digests.len() as u32).to_le_bytes());
                for (entry, d) in digests {
                    b.extend_from_slice(&entry.to_le_bytes());
                    b.extend_from_slice(d);
                }
            }
            Msg::Unchanged { files, bytes } => {
                b.extend_from_slice(&files.to_le_bytes());
                b.extend_from_slice(&bytes.to_le_bytes());
            }
            Msg::Mirror { delete, dry_run, rules } => mirror::encode_rules(&mut b, *delete, *dry_run, rules),
            Msg::Changes { items } => mirror::encode_items(&mut b, items),
            Msg::Tally(t) => t.encode(&mut b),
            Msg::TreeSums { path } => put_bytes16(&mut b, path),
            Msg::TreeSumsPart { last, entries } => tree_sums::encode_part(&mut b, *last, entries),
            Msg::FileDigests { digests } => {
                b.extend_from_slice(&(digests.len() as u32).to_le_bytes());
                for (entry, d) in digests {
                    b.extend_from_slice(&entry.to_le_bytes());
                    b.extend_from_slice(d);
                }
            }
            Msg::Summary(s) => {
                for v in [s.bytes, s.files, s.dirs, s.symlinks, s.blocks, s.micros, s.verified] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
                for v in s.disk.iter().flat_map(DiskStats::fields) {
                    b.extend_from_slice(&v.to_le_bytes());
                }
                // Only after the disk figures, in this order, each there when a later one is
                // (0 when not asked): the decoder finds them by what is left.
                let tail = [s.owner_not_kept, s.xattrs_not_kept, s.cpu_us];
                if let (Some(_), Some(last)) = (&s.disk, tail.iter().rposition(Option::is_some)) {
                    for v in &tail[..=last] {
                        b.extend_from_slice(&v.unwrap_or(0).to_le_bytes());
                    }
                }
            }
            Msg::Error { code, message } => {
                b.push(code.len().min(255) as u8);
                b.extend_from_slice(&code.as_bytes()[..code.len().min(255)]);
                let m = &message.as_bytes()[..message.len().min(MAX_ERROR_MESSAGE)];
                b.extend_from_slice(&(m.len() as u16).to_le_bytes());
                b.extend_from_slice(m);
            }
        }
        let len = (b.len() - 4) as u32;
        b[..4].copy_from_slice(&len.to_le_bytes());
        b
    }
}

pub(super) fn put_bytes16(b: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
    b.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    b.extend_from_slice(bytes);
}
