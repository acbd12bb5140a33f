//! The byte ABI's requests and replies as bytes: `[FORMAT_VERSION]`, then postcard in the layout
//! serde derives for [`Request`] and [`Reply`]. Both ways are written by hand (with the codec's
//! writer and `Reader`): the derived serializer of the reply types costs the module far more code,
//! and `abi/tests.rs` checks the hand-written code against the derives. Re-exported at
//! [`crate::codec`], where callers have always found these functions.

use alloc::string::String;
use alloc::vec::Vec;

use crate::abi::{Command, InFrame, Reply, Request, SyncEvent, SyncOutput, WireDrift, WireError, WireEvent};
use crate::codec::read::Reader;
use crate::codec::value::put_value;
use crate::codec::write::{put_bytes, put_kind, put_str, put_strs, put_varint, write_versioned};
use crate::codec::{FORMAT_VERSION, MAX_MESSAGE_BYTES, read_versioned_with};
use crate::error::Error;
use crate::storage::{MapStatus, StorageOp, StorageRequest, StorageResult};
use crate::sync::types::ConnState;

/// Refuses a message over [`MAX_MESSAGE_BYTES`] before anything of it is decoded.
pub(crate) fn check_size(bytes: &[u8], what: &'static str) -> Result<(), Error> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Decode {
            what,
            reason: alloc::format!("{} bytes is more than the limit of {MAX_MESSAGE_BYTES}", bytes.len()),
        });
    }
    Ok(())
}

/// Encodes a byte-ABI request.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    write_versioned(request, &mut out);
    out
}

/// Decodes a byte-ABI request.
pub fn decode_request(bytes: &[u8]) -> Result<Request, Error> {
    check_size(bytes, "request")?;
    read_versioned_with(bytes, "request", Reader::request)
}

/// Encodes a byte-ABI reply. Written by hand in the layout serde gives [`Reply`] (which
/// [`decode_reply`] reads): the derived serializer of the reply types costs the module far more
/// code.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut out = alloc::vec![FORMAT_VERSION];
    let o = &mut out;
    match reply {
        Reply::Done => put_varint(o, 0),
        Reply::Opened(handle) => {
            put_varint(o, 1);
            put_varint(o, u64::from(*handle));
        }
        Reply::Value(value) => {
            put_varint(o, 2);
            match value {
                Some(value) => {
                    o.push(1);
                    put_value(o, value);
                }
                None => o.push(0),
            }
        }
        Reply::Values(values) => {
            put_varint(o, 3);
            put_varint(o, values.len() as u64);
            for value in values {
                put_value(o, value);
            }
        }
        Reply::Tags(tags) => {
            put_varint(o, 4);
            put_strs(o, tags);
        }
        Reply::Root(root) => {
            put_varint(o, 5);
            put_varint(o, u64::from(*root));
        }
        Reply::Bytes(bytes) => {
            put_varint(o, 6);
            put_bytes(o, bytes);
        }
        Reply::Count(count) => {
            put_varint(o, 7);
            put_varint(o, *count);
        }
        Reply::Error(error) => {
            put_varint(o, 8);
            put_error(o, error);
        }
        Reply::Status(status) => {
            put_varint(o, 9);
            match status {
                MapStatus::Loading => put_varint(o, 0),
                MapStatus::Loaded(kind) => {
                    put_varint(o, 1);
                    put_kind(o, *kind);
                }
            }
        }
        Reply::Storage { requests, events } => {
            put_varint(o, 10);
            put_varint(o, requests.len() as u64);
            for request in requests {
                put_varint(o, request.id);
                match &request.op {
                    StorageOp::LoadAllKeys { map } => {
                        put_varint(o, 0);
                        put_str(o, map);
                    }
                    StorageOp::LoadAll { map, keys } => {
                        put_varint(o, 1);
                        put_str(o, map);
                        put_strs(o, keys);
                    }
                    StorageOp::StoreAll { map, entries } => {
                        put_varint(o, 2);
                        put_str(o, map);
                        put_varint(o, entries.len() as u64);
                        for (key, bytes) in entries {
                            put_str(o, key);
                            put_bytes(o, bytes);
                        }
                    }
                    StorageOp::DeleteAll { map, keys } => {
                        put_varint(o, 3);
                        put_str(o, map);
                        put_strs(o, keys);
                    }
                }
            }
            put_varint(o, events.len() as u64);
            for event in events {
                match event {
                    WireEvent::MapLoaded { map, count } => {
                        put_varint(o, 0);
                        put_str(o, map);
                        put_varint(o, *count);
                    }
                    WireEvent::Ready { map, kind } => {
                        put_varint(o, 1);
                        put_str(o, map);
                        put_kind(o, *kind);
                    }
                    WireEvent::LoadFailed { map, error } => {
                        put_varint(o, 2);
                        put_str(o, map);
                        put_error(o, error);
                    }
                    WireEvent::Flushed { flush_id } => {
                        put_varint(o, 3);
                        put_varint(o, *flush_id);
                    }
                    WireEvent::FlushFailed { flush_id, error } => {
                        put_varint(o, 4);
                        put_varint(o, *flush_id);
                        put_error(o, error);
                    }
                    WireEvent::Refused { map, asked, error } => {
                        put_varint(o, 5);
                        put_str(o, map);
                        put_kind(o, *asked);
                        put_error(o, error);
                    }
                }
            }
        }
        Reply::Imported { changed, drifts } => {
            put_varint(o, 11);
            put_varint(o, *changed);
            put_varint(o, drifts.len() as u64);
            drifts.iter().for_each(|d| put_drift(o, d));
        }
        Reply::Sync(outputs) => {
            put_varint(o, 12);
            put_varint(o, outputs.len() as u64);
            outputs.iter().for_each(|output| put_sync_output(o, output));
        }
    }
    out
}

fn put_drift(o: &mut Vec<u8>, d: &WireDrift) {
    put_str(o, &d.remote);
    put_varint(o, d.wall);
    put_varint(o, d.ahead_ms);
    put_varint(o, d.max_drift_ms);
}

fn put_sync_output(o: &mut Vec<u8>, output: &SyncOutput) {
    put_varint(o, u64::from(output.conn));
    let state = match output.state {
        ConnState::Connecting => 0,
        ConnState::Syncing => 1,
        ConnState::Synced => 2,
        ConnState::Closed => 3,
    };
    put_varint(o, state);
    put_varint(o, output.pending);
    put_varint(o, output.frames.len() as u64);
    output.frames.iter().for_each(|f| put_bytes(o, f));
    o.push(u8::from(output.more));
    put_varint(o, output.events.len() as u64);
    for event in &output.events {
        match event {
            SyncEvent::Hello { node_id, token } => {
                put_varint(o, 0);
                put_str(o, node_id);
                match token {
                    Some(token) => {
                        o.push(1);
                        put_str(o, token);
                    }
                    None => o.push(0),
                }
            }
            SyncEvent::Connected { node_id } => {
                put_varint(o, 1);
                put_str(o, node_id);
            }
            SyncEvent::Synced => put_varint(o, 2),
            SyncEvent::Acked { marker } => {
                put_varint(o, 3);
                put_varint(o, *marker);
            }
            SyncEvent::Drift(d) => {
                put_varint(o, 4);
                put_drift(o, d);
            }
            SyncEvent::KindMismatch { map, local, remote } => {
                put_varint(o, 5);
                put_str(o, map);
                put_kind(o, *local);
                put_kind(o, *remote);
            }
            SyncEvent::Oversized { map, bytes } => {
                put_varint(o, 6);
                put_str(o, map);
                put_varint(o, *bytes);
            }
            SyncEvent::Closed { code, message, by_peer } => {
                put_varint(o, 7);
                put_str(o, code);
                put_str(o, message);
                o.push(u8::from(*by_peer));
            }
        }
    }
}

/// A [`WireError`]: its code, then its message.
fn put_error(out: &mut Vec<u8>, error: &WireError) {
    put_str(out, &error.code);
    put_str(out, &error.message);
}

/// Decodes a byte-ABI reply.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, Error> {
    check_size(bytes, "reply")?;
    read_versioned_with(bytes, "reply", Reader::reply)
}

impl<'a> Reader<'a> {
    fn request(&mut self) -> postcard::Result<Request> {
        Ok(Request { grid: self.u32()?, wall: self.u64()?, command: self.command()? })
    }

    fn command(&mut self) -> postcard::Result<Command> {
        Ok(match self.variant(27)? {
            0 => Command::Open { node_id: self.string()?, max_drift_ms: self.u64()?, strict: self.bool()? },
            1 => Command::Close,
            2 => Command::Set {
                map: self.string()?,
                key: self.string()?,
                value: self.value()?,
                ttl_ms: self.option_u64()?,
            },
            3 => Command::SetMany { map: self.string()?, entries: self.list(2, |r| Ok((r.string()?, r.value()?)))? },
            4 => Command::Remove { map: self.string()?, key: self.string()? },
            5 => Command::Get { map: self.string()?, key: self.string()? },
            6 => Command::Add {
                map: self.string()?,
                key: self.string()?,
                value: self.value()?,
                ttl_ms: self.option_u64()?,
            },
            7 => Command::OrRemove { map: self.string()?, key: self.string()?, value: self.value()? },
            8 => Command::OrGet { map: self.string()?, key: self.string()? },
            9 => Command::Root { map: self.string()? },
            10 => Command::Export { map: self.string()? },
            11 => Command::Import { map: self.string()?, snapshot: self.byte_vec()? },
            12 => Command::Prune { map: self.string()?, older_than: self.u64()? },
            13 => Command::OpenPersistent { node_id: self.string()?, max_drift_ms: self.u64()?, strict: self.bool()? },
            14 => Command::GetMap { map: self.string()?, kind: if self.some()? { Some(self.kind()?) } else { None } },
            15 => Command::Flush,
            16 => Command::Storage { answers: self.list(2, |r| Ok((r.u64()?, r.storage_result()?)))? },
            17 => Command::TakeEarlyWrites { map: self.string()? },
            18 => Command::SyncConnect { token: self.option_string()? },
            19 => Command::SyncIncoming,
            20 => {
                Command::SyncAccept { conn: self.u32()?, read: self.option_strings()?, write: self.option_strings()? }
            }
            21 => Command::SyncRefuse { conn: self.u32()?, code: self.string()?, reason: self.string()? },
            // A frame: its connection and its length, a byte each at least.
            22 => {
                Command::SyncFrames { frames: self.list(2, |r| Ok(InFrame { conn: r.u32()?, bytes: r.byte_vec()? }))? }
            }
            23 => Command::SyncPoll { conns: self.list(1, Self::u32)? },
            24 => Command::SyncClose { conn: self.u32()? },
            25 => Command::SyncRemove { conn: self.u32()? },
            _ => Command::SyncMarker,
        })
    }

    fn option_string(&mut self) -> postcard::Result<Option<String>> {
        Ok(if self.some()? { Some(self.string()?) } else { None })
    }

    fn option_strings(&mut self) -> postcard::Result<Option<Vec<String>>> {
        Ok(if self.some()? { Some(self.list(1, Self::string)?) } else { None })
    }

    fn storage_result(&mut self) -> postcard::Result<StorageResult> {
        Ok(match self.variant(4)? {
            0 => StorageResult::Keys(self.list(1, Self::string)?),
            1 => StorageResult::Values(self.list(2, |r| Ok((r.string()?, r.byte_vec()?)))?),
            2 => StorageResult::Done,
            _ => StorageResult::Failed(self.string()?),
        })
    }

    fn reply(&mut self) -> postcard::Result<Reply> {
        Ok(match self.variant(13)? {
            0 => Reply::Done,
            1 => Reply::Opened(self.u32()?),
            2 => Reply::Value(if self.some()? { Some(self.value()?) } else { None }),
            3 => Reply::Values(self.list(1, Self::value)?),
            4 => Reply::Tags(self.list(1, Self::string)?),
            5 => Reply::Root(self.u32()?),
            6 => Reply::Bytes(self.byte_vec()?),
            7 => Reply::Count(self.u64()?),
            8 => Reply::Error(self.error()?),
            9 => {
                Reply::Status(if self.variant(2)? == 0 { MapStatus::Loading } else { MapStatus::Loaded(self.kind()?) })
            }
            // A request: an id, a call's variant and a map name, a byte each at least; an event:
            // a variant and a field.
            10 => Reply::Storage { requests: self.list(3, Self::storage_request)?, events: self.list(2, Self::event)? },
            // A drift: a remote timestamp's length and three numbers.
            11 => Reply::Imported { changed: self.u64()?, drifts: self.list(4, Self::drift)? },
            // An output: six fields, a byte each at least.
            _ => Reply::Sync(self.list(6, Self::sync_output)?),
        })
    }

    fn sync_output(&mut self) -> postcard::Result<SyncOutput> {
        Ok(SyncOutput {
            conn: self.u32()?,
            state: match self.variant(4)? {
                0 => ConnState::Connecting,
                1 => ConnState::Syncing,
                2 => ConnState::Synced,
                _ => ConnState::Closed,
            },
            pending: self.u64()?,
            frames: self.list(1, Self::byte_vec)?,
            more: self.bool()?,
            events: self.list(1, Self::sync_event)?,
        })
    }

    fn sync_event(&mut self) -> postcard::Result<SyncEvent> {
        Ok(match self.variant(8)? {
            0 => SyncEvent::Hello { node_id: self.string()?, token: self.option_string()? },
            1 => SyncEvent::Connected { node_id: self.string()? },
            2 => SyncEvent::Synced,
            3 => SyncEvent::Acked { marker: self.u64()? },
            4 => SyncEvent::Drift(self.drift()?),
            5 => SyncEvent::KindMismatch { map: self.string()?, local: self.kind()?, remote: self.kind()? },
            6 => SyncEvent::Oversized { map: self.string()?, bytes: self.u64()? },
            _ => SyncEvent::Closed { code: self.string()?, message: self.string()?, by_peer: self.bool()? },
        })
    }

    fn drift(&mut self) -> postcard::Result<WireDrift> {
        Ok(WireDrift { remote: self.string()?, wall: self.u64()?, ahead_ms: self.u64()?, max_drift_ms: self.u64()? })
    }

    fn storage_request(&mut self) -> postcard::Result<StorageRequest> {
        let id = self.u64()?;
        let op = match self.variant(4)? {
            0 => StorageOp::LoadAllKeys { map: self.string()? },
            1 => StorageOp::LoadAll { map: self.string()?, keys: self.list(1, Self::string)? },
            2 => StorageOp::StoreAll {
                map: self.string()?,
                entries: self.list(2, |r| Ok((r.string()?, r.byte_vec()?)))?,
            },
            _ => StorageOp::DeleteAll { map: self.string()?, keys: self.list(1, Self::string)? },
        };
        Ok(StorageRequest { id, op })
    }

    fn error(&mut self) -> postcard::Result<WireError> {
        Ok(WireError { code: self.string()?, message: self.string()? })
    }

    fn event(&mut self) -> postcard::Result<WireEvent> {
        Ok(match self.variant(6)? {
            0 => WireEvent::MapLoaded { map: self.string()?, count: self.u64()? },
            1 => WireEvent::Ready { map: self.string()?, kind: self.kind()? },
            2 => WireEvent::LoadFailed { map: self.string()?, error: self.error()? },
            3 => WireEvent::Flushed { flush_id: self.u64()? },
            4 => WireEvent::FlushFailed { flush_id: self.u64()?, error: self.error()? },
            _ => WireEvent::Refused { map: self.string()?, asked: self.kind()?, error: self.error()? },
        })
    }
}
