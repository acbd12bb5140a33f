//! The Merkle catch-up of one map between two replicas, one turn at a time.
//!
//! The side that opens a catch-up sends its root ([`Frame::Root`]). From then on the sides take
//! turns; a turn answers every question of the one before and may ask new ones, and ends with
//! [`Frame::Turn`]. For each node the two sides hold differently, the side whose turn it is
//! - asks for the peer's records under it ([`Frame::Pull`]) when it holds nothing there;
//! - sends its records under it as answers when the peer holds nothing there;
//! - sends its records under it *with a question* (`ask`) when it holds few there (at most
//!   [`SMALL`], or at the deepest level): the peer merges them and answers with only the records
//!   the payload lacked or held older;
//! - else sends the digests of its children ([`Frame::Children`]), one level down.
//!
//! Levels 1 to 3 are the maps' Merkle trees; below a leaf, the catch-up goes on with hashes it
//! computes from the keys' item hashes in one pass over the map (levels 4 to 8 branch on further
//! hex digits of `fnv1a(key)`), so a 100 000-key map whose leaves hold ~24 keys each still sends
//! ~1.5 records per differing key. A turn asks nothing when its sides agree: that turn says
//! `done`, and the catch-up is over on both sides.
//!
//! OR tombstones are hashed by no tree: roots carry a digest of them, and when the digests differ
//! one side sends all its tombstones with a question, the other answers with those it lacked.
//! (That is as many bytes as there are tombstones; a tree of them is the next step if it matters.)
//! An OR record a side receives whose tag it has tombstoned is answered with the tombstone (see
//! the connection), so a remove always wins.
//!
//! Each turn reads the map in at most two passes (children digests, then records), never one per
//! node: a catch-up is linear in the map and the difference.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use hashbrown::{HashMap, HashSet};

use crate::codec::snapshot::{encode_lww_refs_into, encode_or_part_into};
use crate::codec::value::value_len;
use crate::hash::mix;
use crate::hlc::Timestamp;
use crate::lww::LwwMap;
use crate::map_common::{Hasher, MapKind};
use crate::merkle::MerkleTree;
use crate::or_map::OrRecord;
use crate::storage::maps::AnyMap;
use crate::sync::frame::{Children, Frame, MAX_LEVEL, Node};

/// A side holding at most this many keys under a differing node sends them rather than descend.
pub(crate) const SMALL: u32 = 4;

/// The peer's root, from the frame that opened the catch-up.
#[derive(Clone, Debug)]
pub(crate) struct PeerRoot {
    pub(crate) kind: MapKind,
    pub(crate) hash: u32,
    pub(crate) count: u64,
    pub(crate) tombstones: u32,
}

/// One catch-up of one map on this side, between turns: what the peer's turn in progress asked.
#[derive(Debug, Default)]
pub(crate) struct CatchUp {
    pub(crate) map: Box<str>,
    /// This side opened it.
    pub(crate) mine: bool,
    /// Open it again once it ends (changes came it may have missed).
    pub(crate) again: bool,
    root: Option<PeerRoot>,
    children: Vec<Children>,
    pulls: Vec<Node>,
    asks: Vec<Node>,
    /// The timestamps of the LWW records the peer sent with questions, by key.
    asked_lww: HashMap<Box<str>, Timestamp, Hasher>,
    /// The tags of the OR records the peer sent with questions.
    asked_or: HashSet<Timestamp, Hasher>,
    /// The peer sent all its tombstones and asks for those it lacks.
    asked_tombstones: Option<HashSet<Timestamp, Hasher>>,
}

/// What may flow for a map on this connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow {
    /// This side may send the map's records to the peer.
    pub(crate) send: bool,
    /// The peer may send the map's records to this side.
    pub(crate) receive: bool,
}

/// What a turn sends: records in three roles, children digests, pulls, tombstones.
#[derive(Default)]
struct Plan {
    /// Nodes whose records go as answers, all of them.
    answer: Vec<Node>,
    /// Nodes the peer asked about: records it lacked.
    reply: Vec<Node>,
    /// Nodes whose records go with a question.
    question: Vec<Node>,
    children: Vec<Node>,
    pulls: Vec<Node>,
    /// Send tombstones: `Some(true)` all with a question, `Some(false)` those the peer lacked.
    tombstones: Option<bool>,
}

impl Plan {
    fn asks(&self) -> bool {
        !self.question.is_empty()
            || !self.children.is_empty()
            || !self.pulls.is_empty()
            || self.tombstones == Some(true)
    }
}

/// The hash and key count of a node of `map`'s tree (levels 0 to 3).
fn tree_node(tree: &MerkleTree, node: Node) -> (u32, u32) {
    tree.node_at(usize::from(node.level), node.index as usize)
}

fn tree(map: &AnyMap) -> &MerkleTree {
    match map {
        AnyMap::Lww(m) => m.tree(),
        AnyMap::Or(m) => m.tree(),
    }
}

fn for_each_hash<'m>(map: &'m AnyMap, f: impl FnMut(&'m str, u32, u32)) {
    match map {
        AnyMap::Lww(m) => m.for_each_hash(f),
        AnyMap::Or(m) => m.for_each_hash(f),
    }
}

/// The `(hash, count)` of the 16 children of each node, in one pass over the map for the nodes at
/// level 3 and deeper (the tree has the others).
fn children_of(map: &AnyMap, nodes: &[Node]) -> Vec<[(u32, u32); 16]> {
    let mut out = alloc::vec![[(0u32, 0u32); 16]; nodes.len()];
    let mut deep: HashMap<Node, usize, Hasher> = HashMap::default();
    for (i, node) in nodes.iter().enumerate() {
        if node.level < 3 {
            for d in 0..16 {
                out[i][d as usize] = tree_node(tree(map), node.child(d));
            }
        } else {
            deep.insert(*node, i);
        }
    }
    if !deep.is_empty() {
        let levels = levels_of(deep.keys());
        for_each_hash(map, |_, key_hash, item| {
            for &level in &levels {
                let node = Node { level, index: index_at(key_hash, level) };
                if let Some(&i) = deep.get(&node) {
                    let digit = index_at(key_hash, level + 1) & 15;
                    let slot = &mut out[i][digit as usize];
                    slot.0 = slot.0.wrapping_add(mix(item));
                    slot.1 += 1;
                }
            }
        });
    }
    out
}

/// The index of the node at `level` holding a key whose `fnv1a` is `key_hash`.
fn index_at(key_hash: u32, level: u8) -> u32 {
    if level == 0 { 0 } else { key_hash >> (32 - 4 * u32::from(level)) }
}

/// The levels of `nodes`, each once, in order (a level is at most [`MAX_LEVEL`]: a bit each).
fn levels_of<'a>(nodes: impl Iterator<Item = &'a Node>) -> Vec<u8> {
    let seen = nodes.fold(0u32, |seen, n| seen | 1 << n.level);
    (0..=MAX_LEVEL).filter(|l| seen & 1 << l != 0).collect()
}

/// The keys under the nodes of each role, in one pass: `(key, role, node)`, sorted by key, each
/// key once (a question wins over an answer or a reply).
fn keys_under<'m>(map: &'m AnyMap, roles: [&[Node]; 3]) -> Vec<(&'m str, usize, Node)> {
    let mut wanted: HashMap<Node, usize, Hasher> = HashMap::default();
    for (role, nodes) in roles.iter().enumerate() {
        for node in *nodes {
            let at = wanted.entry(*node).or_insert(role);
            *at = (*at).max(role);
        }
    }
    let levels = levels_of(wanted.keys());
    let mut out: Vec<(&str, usize, Node)> = Vec::new();
    let mut visit = |key: &'m str, key_hash: u32| {
        let mut best: Option<(usize, Node)> = None;
        for &level in &levels {
            let node = Node { level, index: index_at(key_hash, level) };
            if let Some(&role) = wanted.get(&node)
                && best.is_none_or(|(r, _)| role > r)
            {
                best = Some((role, node));
            }
        }
        if let Some((role, node)) = best {
            out.push((key, role, node));
        }
    };
    if !wanted.is_empty() {
        for_each_hash(map, |k, h, _| visit(k, h));
    }
    crate::sort::by_key(&mut out, |e| e.0.as_bytes());
    out
}

impl CatchUp {
    pub(crate) fn new(map: &str, mine: bool) -> Self {
        Self { map: Box::from(map), mine, ..Self::default() }
    }

    /// The frame that opens a catch-up of `map` (this side's root).
    pub(crate) fn open(name: &str, map: &AnyMap) -> Frame {
        let (hash, count) = tree_node(tree(map), Node::ROOT);
        let tombstones = match map {
            AnyMap::Or(m) => m.tombstone_digest(),
            AnyMap::Lww(_) => 0,
        };
        Frame::Root { map: String::from(name), kind: map.kind(), hash, count: u64::from(count), tombstones }
    }

    pub(crate) fn on_root(&mut self, root: PeerRoot) {
        self.root = Some(root);
    }

    pub(crate) fn on_children(&mut self, nodes: Vec<Children>) {
        self.children.extend(nodes);
    }

    pub(crate) fn on_pull(&mut self, nodes: Vec<Node>) {
        self.pulls.extend(nodes);
    }

    /// A question's records arrived (before they are merged): remember what the peer holds.
    pub(crate) fn on_asked_lww<'a>(&mut self, ask: Vec<Node>, records: impl Iterator<Item = (&'a str, Timestamp)>) {
        self.asks.extend(ask);
        self.asked_lww.extend(records.map(|(k, t)| (Box::from(k), t)));
    }

    /// As [`CatchUp::on_asked_lww`], for OR records (`tombstones` when it asks about those).
    pub(crate) fn on_asked_or(&mut self, ask: Vec<Node>, tags: Vec<Timestamp>, tombstones: Option<Vec<Timestamp>>) {
        self.asks.extend(ask);
        self.asked_or.extend(tags);
        if let Some(tombstones) = tombstones {
            self.asked_tombstones.get_or_insert_with(HashSet::default).extend(tombstones);
        }
    }

    /// This side's turn, once the peer's ended: the frames to send (the last a `Turn`, unless the
    /// peer opened the catch-up and both roots agree) and whether the catch-up is over.
    pub(crate) fn respond(&mut self, map: &AnyMap, flow: Flow, budget: usize) -> (Vec<Frame>, bool) {
        let mut plan = Plan::default();
        let mut mismatch = None;
        if let Some(root) = self.root.take() {
            self.plan_root(map, &root, flow, &mut plan, &mut mismatch);
        }
        let children = core::mem::take(&mut self.children);
        let mine = children_of(map, &children.iter().map(|c| c.node).collect::<Vec<_>>());
        for (theirs, mine) in children.iter().zip(mine) {
            let mut hashes = theirs.hashes.iter();
            for d in 0..16u32 {
                let peer = (theirs.mask >> d & 1 == 1).then(|| hashes.next().copied().unwrap_or_default());
                let (hash, count) = mine[d as usize];
                let differs = match peer {
                    Some(h) => count == 0 || h != hash,
                    None => count > 0,
                };
                if differs {
                    Self::plan_node(theirs.node.child(d), peer.is_some(), count, flow, &mut plan);
                }
            }
        }
        if flow.send {
            plan.answer.append(&mut self.pulls);
            plan.reply.append(&mut self.asks);
        }
        self.pulls.clear();
        self.asks.clear();
        if flow.send && self.asked_tombstones.is_some() {
            plan.tombstones = plan.tombstones.or(Some(false));
        }
        let done = !plan.asks();
        let mut frames = Vec::new();
        if let Some(kind) = mismatch {
            frames.push(Frame::Mismatch { map: String::from(&*self.map), kind });
        }
        self.write(map, plan, budget, &mut frames);
        self.asked_lww.clear();
        self.asked_or.clear();
        self.asked_tombstones = None;
        frames.push(Frame::Turn { map: String::from(&*self.map), mine: self.mine, done });
        (frames, done)
    }

    fn plan_root(&self, map: &AnyMap, root: &PeerRoot, flow: Flow, plan: &mut Plan, mismatch: &mut Option<MapKind>) {
        if root.kind != map.kind() {
            *mismatch = Some(map.kind());
            return;
        }
        let (hash, count) = tree_node(tree(map), Node::ROOT);
        if hash != root.hash || count as u64 != root.count {
            Self::plan_node(Node::ROOT, root.count > 0, count, flow, plan);
        }
        if let AnyMap::Or(m) = map
            && m.tombstone_digest() != root.tombstones
        {
            // Both ways: all of this side's with a question (an empty list asks for all theirs).
            if flow.receive {
                plan.tombstones = Some(true);
            } else if flow.send {
                plan.tombstones = Some(false);
            }
        }
    }

    /// Plans one node both sides may hold differently (`peer_has`: the peer holds keys under it;
    /// `count`: this side's keys under it). Equal nodes are filtered by the caller.
    fn plan_node(node: Node, peer_has: bool, count: u32, flow: Flow, plan: &mut Plan) {
        match (peer_has, count > 0) {
            (false, false) => {}
            (true, false) if flow.receive => plan.pulls.push(node),
            (false, true) if flow.send => plan.answer.push(node),
            (true, true) if count <= SMALL || node.level >= MAX_LEVEL => {
                if flow.send {
                    plan.question.push(node);
                } else if flow.receive {
                    plan.pulls.push(node);
                }
            }
            (true, true) => plan.children.push(node),
            _ => {}
        }
    }

    /// Turns a plan into frames of at most `budget` payload bytes each.
    fn write(&self, map: &AnyMap, plan: Plan, budget: usize, frames: &mut Vec<Frame>) {
        let name = || String::from(&*self.map);
        let keys = keys_under(map, [&plan.answer, &plan.reply, &plan.question]);
        // Replies keep only what the peer's payload lacked or held older.
        let keep = |key: &str, role: usize| -> bool {
            role != 1
                || match map {
                    AnyMap::Lww(m) => {
                        let Some(r) = m.record_ref(key) else { return false };
                        self.asked_lww.get(key).is_none_or(|t| {
                            (t.millis, t.counter, t.node_id.as_str()) != (r.millis, r.counter, r.node_id.as_str())
                        })
                    }
                    AnyMap::Or(m) => m.get_records(key).iter().any(|r| !self.asked_or.contains(&r.timestamp)),
                }
        };
        let (plain, asked): (Vec<_>, Vec<_>) =
            keys.into_iter().filter(|(k, role, _)| keep(k, *role)).partition(|(_, role, _)| *role != 2);
        let tombstones: Vec<String> = match (map, plan.tombstones) {
            (AnyMap::Or(m), Some(all)) => {
                let peer = self.asked_tombstones.as_ref();
                let mut tags: Vec<String> = m
                    .tombstone_tags()
                    .filter(|t| all || peer.is_none_or(|p| !p.contains(*t)))
                    .map(Timestamp::to_text)
                    .collect();
                crate::sort::strs(&mut tags);
                tags
            }
            _ => Vec::new(),
        };
        let ask_tombstones = plan.tombstones == Some(true);
        let (answer_tags, question_tags) =
            if ask_tombstones { (Vec::new(), tombstones) } else { (tombstones, Vec::new()) };
        for (payload, _) in pages(map, &plain, &answer_tags, &self.asked_or, budget) {
            frames.push(Frame::Records {
                map: name(),
                mine: self.mine,
                ask: Vec::new(),
                ask_tombstones: false,
                payload,
            });
        }
        if !asked.is_empty() || ask_tombstones {
            let mut question = pages(map, &asked, &question_tags, &HashSet::default(), budget);
            if question.is_empty() {
                // No tombstones here: an empty list asks for all of the peer's.
                let mut payload = Vec::new();
                encode_or_part_into(&[], &[], &mut payload);
                question.push((payload, Vec::new()));
            }
            for (i, (payload, ask)) in question.into_iter().enumerate() {
                frames.push(Frame::Records {
                    map: name(),
                    mine: self.mine,
                    ask,
                    ask_tombstones: ask_tombstones && i == 0,
                    payload,
                });
            }
        }
        // Children entries take at most 71 bytes; pulls 6.
        for chunk in plan.children.chunks((budget / 72).max(1)) {
            let nodes = children_of(map, chunk)
                .into_iter()
                .zip(chunk)
                .map(|(kids, node)| {
                    let mut mask = 0u16;
                    let mut hashes = Vec::new();
                    for (d, (hash, count)) in kids.iter().enumerate() {
                        if *count > 0 {
                            mask |= 1 << d;
                            hashes.push(*hash);
                        }
                    }
                    Children { node: *node, mask, hashes }
                })
                .collect();
            frames.push(Frame::Children { map: name(), mine: self.mine, nodes });
        }
        for chunk in plan.pulls.chunks((budget / 6).max(1)) {
            frames.push(Frame::Pull { map: name(), mine: self.mine, nodes: chunk.to_vec() });
        }
    }
}

/// An estimate of an LWW record's bytes in a fragment (a little over, so pages stay in budget).
fn lww_size(m: &LwwMap, key: &str) -> usize {
    m.record_ref(key).map_or(0, |r| key.len() + r.value.map_or(0, |v| v.as_bytes().len()) + 24)
}

fn or_size(records: &[OrRecord]) -> usize {
    records.iter().map(|r| value_len(&r.value) + 2 * r.timestamp.node_id.as_str().len() + 56).sum()
}

/// Snapshot fragments of the records of `keys` (OR: minus the tags in `skip`) and of
/// `tombstones`, each within `budget` bytes, with the nodes their keys lie under. A record larger
/// than the budget goes alone in a fragment of its own (the connection reports it).
pub(crate) fn pages(
    map: &AnyMap,
    keys: &[(&str, usize, Node)],
    tombstones: &[String],
    skip: &HashSet<Timestamp, Hasher>,
    budget: usize,
) -> Vec<(Vec<u8>, Vec<Node>)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut tags = tombstones;
    while start < keys.len() || !tags.is_empty() {
        let mut size = 16;
        let mut end = start;
        while end < keys.len() {
            let key = keys[end].0;
            let s = match map {
                AnyMap::Lww(m) => lww_size(m, key),
                AnyMap::Or(m) => or_size(m.get_records(key)) + key.len(),
            };
            if end > start && size + s > budget {
                break;
            }
            size += s;
            end += 1;
        }
        let mut take_tags = 0;
        while take_tags < tags.len() && (size + tags[take_tags].len() + 2 <= budget || (end == start && take_tags == 0))
        {
            size += tags[take_tags].len() + 2;
            take_tags += 1;
        }
        let chunk = &keys[start..end];
        let mut nodes: Vec<Node> = chunk.iter().map(|k| k.2).collect();
        crate::sort::by_made_key(&mut nodes, |n| {
            let mut key = [n.level, 0, 0, 0, 0];
            key[1..].copy_from_slice(&n.index.to_be_bytes());
            key
        });
        nodes.dedup();
        let mut payload = Vec::new();
        match map {
            AnyMap::Lww(m) => {
                let refs: Vec<_> = chunk.iter().filter_map(|(k, _, _)| m.record_ref(k)).collect();
                encode_lww_refs_into(&refs, &mut payload);
            }
            AnyMap::Or(m) => {
                let kept: Vec<(&str, Vec<OrRecord>)> = chunk
                    .iter()
                    .map(|(k, _, _)| {
                        let rs = m.get_records(k).iter().filter(|r| !skip.contains(&r.timestamp)).cloned().collect();
                        (*k, rs)
                    })
                    .filter(|(_, rs): &(&str, Vec<OrRecord>)| !rs.is_empty())
                    .collect();
                let parts: Vec<(&str, &[OrRecord])> = kept.iter().map(|(k, rs)| (*k, &rs[..])).collect();
                encode_or_part_into(&parts, &tags[..take_tags], &mut payload);
            }
        }
        out.push((payload, nodes));
        start = end;
        tags = &tags[take_tags..];
        if end == keys.len() && tags.is_empty() {
            break;
        }
    }
    out
}
