//! The sync protocol's frames and their bytes: `[PROTOCOL_VERSION]`, then the frame in postcard
//! (a variant index, then its fields in order), written and read by hand with the codec's writer
//! and `Reader`, as the byte ABI's replies are (a serde derive would add its code to the module).
//!
//! Decoding checks, before anything is applied: the size against the connection's limit (before
//! reading a byte), the version, every tag and length, map names, node ids, tree nodes and their
//! hash counts, and that nothing trails the frame. Records travel inside as snapshot fragments
//! (`payload`), which the grid's import checks whole before merging. Every error names the frame
//! and what was wrong, and the connection answers it with an [`Frame::Error`] and closes.
//!
//! ## Decisions
//! - **Implicit sequence numbers.** The transport is ordered and reliable within one connection,
//!   so each side numbers the frames it sends after the handshake (all but `Ack` and `Error`) 1, 2,
//!   3, ... without writing the number; [`Frame::Ack`] acknowledges a prefix. Every sequenced
//!   frame is acknowledged only once what it changed is durable, so a catch-up's last frame, once
//!   acknowledged, also vouches that the peer has stored what it compared equal.
//! - **Hashes as 4 fixed bytes**, not varints: they are uniformly random, and a varint of one
//!   takes 5 bytes on average. Children are sent as a 16-bit mask of the non-empty ones and their
//!   hashes: an empty child costs one bit.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::codec::read::Reader;
use crate::codec::write::{put_bytes, put_kind, put_str, put_strs, put_varint};
use crate::codec::{postcard_reason, trailing};
use crate::error::{Error, Quoted, excerpt};
use crate::hlc::NodeId;
use crate::map_common::MapKind;
use crate::storage::maps::check_name;

/// The protocol version, the first byte of every frame.
pub const PROTOCOL_VERSION: u8 = 1;

/// The default size limit of a frame, in bytes (1 MiB).
pub const DEFAULT_FRAME_LIMIT: usize = 1 << 20;

/// The smallest limit a connection accepts: room for a page of one record of a typical size.
pub const MIN_FRAME_LIMIT: usize = 512;

/// The deepest level of the catch-up tree: level `l` branches on the first `l` hex digits of
/// `fnv1a(key)`; levels 1 to 3 are the maps' Merkle trees, 4 to 8 are computed on the fly.
pub const MAX_LEVEL: u8 = 8;

/// A node of the catch-up tree: its level (0 is the root) and its index at that level (the first
/// `level` hex digits of the keys' hashes, as a number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node {
    /// 0 (the root) to [`MAX_LEVEL`].
    pub level: u8,
    /// Below `16^level`.
    pub index: u32,
}

impl Node {
    /// The root.
    pub const ROOT: Node = Node { level: 0, index: 0 };

    /// True when the key whose `fnv1a` is `key_hash` lies under this node.
    pub fn holds(self, key_hash: u32) -> bool {
        self.level == 0 || (key_hash >> (32 - 4 * u32::from(self.level))) == self.index
    }

    /// Child `digit` (0 to 15).
    pub fn child(self, digit: u32) -> Node {
        Node { level: self.level + 1, index: (self.index << 4) | digit }
    }

    fn is_valid(self) -> bool {
        self.level <= MAX_LEVEL && (self.level == MAX_LEVEL || self.index < 1 << (4 * u32::from(self.level)))
    }
}

/// The non-empty children of one node, as one side holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Children {
    /// The parent.
    pub node: Node,
    /// Bit `d` set: child `d` holds keys.
    pub mask: u16,
    /// The hashes of the children set in `mask`, in digit order.
    pub hashes: Vec<u32>,
}

/// One frame of the sync protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The connecting side's first frame.
    Hello {
        /// The protocol version it speaks.
        version: u8,
        /// Its node id.
        node_id: String,
        /// A credential for the accepting side's driver to check (the core never reads it).
        token: Option<String>,
    },
    /// The accepting side took the connection; what the connecting side may read and write
    /// (`None`: every map), so it sends nothing it would be refused for.
    Welcome {
        /// The accepting side's node id.
        node_id: String,
        /// Maps the connecting side may read.
        read: Option<Vec<String>>,
        /// Maps the connecting side may write.
        write: Option<Vec<String>>,
    },
    /// The sender closes the connection because of this.
    Error {
        /// A stable code (see [`codes`]).
        code: String,
        /// What was wrong, for people.
        message: String,
    },
    /// Every sequenced frame up to `upto` (counted from 1) is applied and durable.
    Ack {
        /// How many of the receiver's sequenced frames are acknowledged.
        upto: u64,
    },
    /// Changes pushed as they happen: a snapshot fragment of the changed keys (OR: and tags).
    Writes {
        /// The map.
        map: String,
        /// An LWW or OR snapshot fragment.
        payload: Vec<u8>,
    },
    /// Opens a catch-up of a map: the sender's root.
    Root {
        /// The map.
        map: String,
        /// Its kind on the sender's side.
        kind: MapKind,
        /// Its Merkle root.
        hash: u32,
        /// Its key count.
        count: u64,
        /// OR maps: the sender's tombstone digest (0 for LWW).
        tombstones: u32,
    },
    /// The connecting side has opened the catch-ups of all its maps: the accepting side opens
    /// those of the maps it has that were not among them.
    RootsEnd,
    /// The sender's children of nodes that differ.
    Children {
        /// The map.
        map: String,
        /// The sender opened this catch-up.
        mine: bool,
        /// One entry per differing node.
        nodes: Vec<Children>,
    },
    /// Asks for every record under these nodes (the sender has none there).
    Pull {
        /// The map.
        map: String,
        /// The sender opened this catch-up.
        mine: bool,
        /// The nodes.
        nodes: Vec<Node>,
    },
    /// Records of a catch-up. With `ask`, the receiver answers with its records under those
    /// nodes that the payload lacks or holds older; with `ask_tombstones`, with the tombstones
    /// the payload lacks.
    Records {
        /// The map.
        map: String,
        /// The sender opened this catch-up.
        mine: bool,
        /// Nodes the payload covers whole, to be answered.
        ask: Vec<Node>,
        /// The payload holds all the sender's tombstones, to be answered.
        ask_tombstones: bool,
        /// An LWW or OR snapshot fragment.
        payload: Vec<u8>,
    },
    /// Ends the sender's turn of a catch-up; `done` when it asked nothing (the catch-up is over).
    Turn {
        /// The map.
        map: String,
        /// The sender opened this catch-up.
        mine: bool,
        /// Nothing in this turn asks for an answer.
        done: bool,
    },
    /// The map is of `kind` on the sender's side, the other kind on the receiver's: never merged.
    Mismatch {
        /// The map.
        map: String,
        /// The sender's kind.
        kind: MapKind,
    },
}

/// The stable codes of [`Frame::Error`].
pub mod codes {
    /// A frame that does not decode, is too large, or makes no sense at this point.
    pub const MALFORMED: &str = "MALFORMED";
    /// The peer speaks another protocol version.
    pub const VERSION: &str = "VERSION";
    /// The accepting side's driver refused the connection.
    pub const REFUSED: &str = "REFUSED";
    /// A write to a map the peer may not write.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// Strict mode: a timestamp too far ahead of the receiver's wall clock.
    pub const CLOCK_DRIFT: &str = "CLOCK_DRIFT";
    /// The receiver's storage failed to load a map the frame needs.
    pub const STORAGE: &str = "STORAGE";
    /// A record the frame carries was refused (bad value, exhausted clock).
    pub const REFUSED_RECORD: &str = "REFUSED_RECORD";
}

impl Frame {
    /// True for frames that take a sequence number (all after the handshake but `Ack` and `Error`).
    pub fn is_sequenced(&self) -> bool {
        !matches!(self, Self::Hello { .. } | Self::Welcome { .. } | Self::Error { .. } | Self::Ack { .. })
    }

    /// The map the frame is about, if any.
    pub fn map(&self) -> Option<&str> {
        match self {
            Self::Writes { map, .. }
            | Self::Root { map, .. }
            | Self::Children { map, .. }
            | Self::Pull { map, .. }
            | Self::Records { map, .. }
            | Self::Turn { map, .. }
            | Self::Mismatch { map, .. } => Some(map),
            _ => None,
        }
    }

    /// Appends the frame's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(PROTOCOL_VERSION);
        let o = out;
        let put_opt_strs = |o: &mut Vec<u8>, list: &Option<Vec<String>>| match list {
            Some(list) => {
                o.push(1);
                put_strs(o, list);
            }
            None => o.push(0),
        };
        let put_node = |o: &mut Vec<u8>, n: &Node| {
            o.push(n.level);
            put_varint(o, u64::from(n.index));
        };
        match self {
            Self::Hello { version, node_id, token } => {
                put_varint(o, 0);
                o.push(*version);
                put_str(o, node_id);
                match token {
                    Some(token) => {
                        o.push(1);
                        put_str(o, token);
                    }
                    None => o.push(0),
                }
            }
            Self::Welcome { node_id, read, write } => {
                put_varint(o, 1);
                put_str(o, node_id);
                put_opt_strs(o, read);
                put_opt_strs(o, write);
            }
            Self::Error { code, message } => {
                put_varint(o, 2);
                put_str(o, code);
                put_str(o, message);
            }
            Self::Ack { upto } => {
                put_varint(o, 3);
                put_varint(o, *upto);
            }
            Self::Writes { map, payload } => {
                put_varint(o, 4);
                put_str(o, map);
                put_bytes(o, payload);
            }
            Self::Root { map, kind, hash, count, tombstones } => {
                put_varint(o, 5);
                put_str(o, map);
                put_kind(o, *kind);
                o.extend_from_slice(&hash.to_le_bytes());
                put_varint(o, *count);
                o.extend_from_slice(&tombstones.to_le_bytes());
            }
            Self::RootsEnd => put_varint(o, 6),
            Self::Children { map, mine, nodes } => {
                put_varint(o, 7);
                put_str(o, map);
                o.push(u8::from(*mine));
                put_varint(o, nodes.len() as u64);
                for c in nodes {
                    put_node(o, &c.node);
                    o.extend_from_slice(&c.mask.to_le_bytes());
                    for h in &c.hashes {
                        o.extend_from_slice(&h.to_le_bytes());
                    }
                }
            }
            Self::Pull { map, mine, nodes } => {
                put_varint(o, 8);
                put_str(o, map);
                o.push(u8::from(*mine));
                put_varint(o, nodes.len() as u64);
                nodes.iter().for_each(|n| put_node(o, n));
            }
            Self::Records { map, mine, ask, ask_tombstones, payload } => {
                put_varint(o, 9);
                put_str(o, map);
                o.push(u8::from(*mine));
                put_varint(o, ask.len() as u64);
                ask.iter().for_each(|n| put_node(o, n));
                o.push(u8::from(*ask_tombstones));
                put_bytes(o, payload);
            }
            Self::Turn { map, mine, done } => {
                put_varint(o, 10);
                put_str(o, map);
                o.push(u8::from(*mine));
                o.push(u8::from(*done));
            }
            Self::Mismatch { map, kind } => {
                put_varint(o, 11);
                put_str(o, map);
                put_kind(o, *kind);
            }
        }
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes one frame of at most `limit` bytes, checking everything but the payloads' records
    /// (which the grid's import checks whole).
    pub fn decode(bytes: &[u8], limit: usize) -> Result<Frame, Error> {
        if bytes.len() > limit {
            return Err(bad(alloc::format!("{} bytes is more than the limit of {limit}", bytes.len())));
        }
        let (&version, body) = bytes.split_first().ok_or_else(|| bad(String::from("it is empty")))?;
        if version != PROTOCOL_VERSION {
            return Err(bad(version_reason(version)));
        }
        let mut reader = Reader { bytes: body };
        let frame = reader.frame().map_err(|e| bad(postcard_reason(&e)))?;
        trailing(reader.bytes.len(), WHAT)?;
        frame.check()?;
        Ok(frame)
    }

    /// What postcard cannot check: names, node ids, tree nodes and hash counts.
    fn check(&self) -> Result<(), Error> {
        if let Some(map) = self.map() {
            check_name(map).map_err(|e| bad(e.to_string()))?;
        }
        let nodes: &[Node] = match self {
            Self::Hello { node_id, .. } | Self::Welcome { node_id, .. } => {
                NodeId::check(node_id).map_err(|e| bad(e.to_string()))?;
                &[]
            }
            Self::Pull { nodes, .. } => nodes,
            Self::Records { ask, .. } => ask,
            Self::Children { nodes, .. } => {
                for c in nodes {
                    if !c.node.is_valid() || c.node.level >= MAX_LEVEL {
                        return Err(bad(alloc::format!(
                            "node {} at level {} has no children",
                            c.node.index,
                            c.node.level
                        )));
                    }
                }
                &[]
            }
            _ => &[],
        };
        match nodes.iter().find(|n| !n.is_valid()) {
            Some(n) => Err(bad(alloc::format!("there is no node {} at level {}", n.index, n.level))),
            None => Ok(()),
        }
    }
}

const WHAT: &str = "sync frame";

fn bad(reason: String) -> Error {
    Error::Decode { what: WHAT, reason }
}

/// Why a frame of `version` is refused: names both versions (SPEC section 8).
pub(crate) fn version_reason(version: u8) -> String {
    alloc::format!("protocol version {version} is not supported (this side speaks version {PROTOCOL_VERSION})")
}

impl<'a> Reader<'a> {
    fn opt_strs(&mut self) -> postcard::Result<Option<Vec<String>>> {
        Ok(if self.some()? { Some(self.list(1, Self::string)?) } else { None })
    }

    fn u32_fixed(&mut self) -> postcard::Result<u32> {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(raw))
    }

    fn node(&mut self) -> postcard::Result<Node> {
        Ok(Node { level: self.byte()?, index: self.u32()? })
    }

    fn frame(&mut self) -> postcard::Result<Frame> {
        Ok(match self.variant(12)? {
            0 => Frame::Hello {
                version: self.byte()?,
                node_id: self.string()?,
                token: if self.some()? { Some(self.string()?) } else { None },
            },
            1 => Frame::Welcome { node_id: self.string()?, read: self.opt_strs()?, write: self.opt_strs()? },
            2 => Frame::Error { code: self.string()?, message: self.string()? },
            3 => Frame::Ack { upto: self.u64()? },
            4 => Frame::Writes { map: self.string()?, payload: self.byte_vec()? },
            5 => Frame::Root {
                map: self.string()?,
                kind: self.kind()?,
                hash: self.u32_fixed()?,
                count: self.u64()?,
                tombstones: self.u32_fixed()?,
            },
            6 => Frame::RootsEnd,
            7 => Frame::Children {
                map: self.string()?,
                mine: self.bool()?,
                // A node's level, index and mask: 4 bytes at least.
                nodes: self.list(4, |r| {
                    let node = r.node()?;
                    let mut raw = [0u8; 2];
                    raw.copy_from_slice(r.take(2)?);
                    let mask = u16::from_le_bytes(raw);
                    let mut hashes = Vec::with_capacity(mask.count_ones() as usize);
                    for _ in 0..mask.count_ones() {
                        hashes.push(r.u32_fixed()?);
                    }
                    Ok(Children { node, mask, hashes })
                })?,
            },
            8 => Frame::Pull { map: self.string()?, mine: self.bool()?, nodes: self.list(2, Self::node)? },
            9 => Frame::Records {
                map: self.string()?,
                mine: self.bool()?,
                ask: self.list(2, Self::node)?,
                ask_tombstones: self.bool()?,
                payload: self.byte_vec()?,
            },
            10 => Frame::Turn { map: self.string()?, mine: self.bool()?, done: self.bool()? },
            _ => Frame::Mismatch { map: self.string()?, kind: self.kind()? },
        })
    }
}

/// A short description of a frame for error messages: its kind and map.
pub(crate) fn describe(frame: &Frame) -> String {
    let name = match frame {
        Frame::Hello { .. } => "Hello",
        Frame::Welcome { .. } => "Welcome",
        Frame::Error { .. } => "Error",
        Frame::Ack { .. } => "Ack",
        Frame::Writes { .. } => "Writes",
        Frame::Root { .. } => "Root",
        Frame::RootsEnd => "RootsEnd",
        Frame::Children { .. } => "Children",
        Frame::Pull { .. } => "Pull",
        Frame::Records { .. } => "Records",
        Frame::Turn { .. } => "Turn",
        Frame::Mismatch { .. } => "Mismatch",
    };
    match frame.map() {
        Some(map) => alloc::format!("{name} frame for map {}", Quoted(&excerpt(map))),
        None => alloc::format!("{name} frame"),
    }
}
