//! The depth-3 Merkle tree of SPEC section 5, kept up to date in O(1) per change.
//!
//! A key's path is `fnv1a(key)` as 8 hex digits; level `i` branches on digit `i`, so the tree has
//! 16 + 256 inner nodes and 4096 leaves, indexed by the path's top bits. Since a node's hash is the
//! wrapping sum of `mix` of its children, a change is applied by subtracting the old contribution
//! and adding the new one at each of the four levels, and `mix(0) == 0` means empty subtrees
//! contribute nothing: removing a key leaves no trace.
//!
//! Levels 2 and 3 start sparse (a sorted list of the nodes used so far, emptied ones included) and
//! turn into flat arrays once more than a sixteenth of their nodes have been used: a small map
//! costs a few hundred bytes, not the 34 KiB of the full arrays, and a grid of many small maps is
//! cheap to make and to keep.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::hash::mix;

const LEAVES: usize = 4096;

/// Incrementally maintained hashes and key counts of one map's Merkle tree.
#[derive(Clone, PartialEq, Eq)]
pub struct MerkleTree {
    root: u32,
    /// Hash and key count of each node at path length 1.
    l1: [Node; 16],
    /// Nodes at path lengths 2 and 3 (leaves), indexed by the path's digits.
    l2: Level,
    l3: Level,
}

/// One node: the hash, and the keys below it (to tell an empty subtree from one whose hashes sum
/// to zero).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Node {
    hash: u32,
    count: u32,
}

impl Node {
    /// Takes `gone` out of the hash, puts `came` in and adds `count_change` (wrapping) to the
    /// count; returns the hash before and after.
    fn change(&mut self, gone: u32, came: u32, count_change: u32) -> (u32, u32) {
        let before = self.hash;
        self.hash = before.wrapping_sub(gone).wrapping_add(came);
        self.count = self.count.wrapping_add(count_change);
        (before, self.hash)
    }
}

/// The nodes of one level: sparse while few are non-empty, then a flat array. (Not generic over
/// the level's size: one copy of this code in the module instead of two.)
#[derive(Clone)]
enum Level {
    /// Nodes that were ever non-empty, by index, sorted by index.
    Sparse(Vec<(u16, Node)>),
    Dense(Box<[Node]>),
}

impl Level {
    fn get(&self, i: usize) -> Node {
        match self {
            Self::Sparse(nodes) => match nodes.binary_search_by_key(&(i as u16), |&(at, _)| at) {
                Ok(at) => nodes[at].1,
                Err(_) => Node::default(),
            },
            Self::Dense(nodes) => nodes[i],
        }
    }

    /// Node `i` of a level of `size` nodes, to change in place: listed (empty) first if it was not,
    /// and the level turned into a flat array first when more than `size / 16` nodes would be listed.
    fn node_mut(&mut self, i: usize, size: usize) -> &mut Node {
        let index = i as u16;
        if let Self::Sparse(nodes) = self
            && nodes.len() >= size / 16
            && nodes.binary_search_by_key(&index, |&(at, _)| at).is_err()
        {
            let mut dense = alloc::vec![Node::default(); size].into_boxed_slice();
            for &(at, n) in nodes.iter() {
                dense[usize::from(at)] = n;
            }
            *self = Self::Dense(dense);
        }
        match self {
            Self::Dense(nodes) => &mut nodes[i],
            Self::Sparse(nodes) => {
                let at = nodes.binary_search_by_key(&index, |&(at, _)| at).unwrap_or_else(|at| {
                    nodes.insert(at, (index, Node::default()));
                    at
                });
                &mut nodes[at].1
            }
        }
    }

    /// The non-empty nodes with their indexes, in index order.
    fn non_empty(&self) -> impl Iterator<Item = (usize, Node)> + '_ {
        let (sparse, dense) = match self {
            Self::Sparse(nodes) => (&nodes[..], &[][..]),
            Self::Dense(nodes) => (&[][..], &nodes[..]),
        };
        let sparse = sparse.iter().map(|&(i, n)| (usize::from(i), n));
        sparse.chain(dense.iter().copied().enumerate()).filter(|(_, n)| *n != Node::default())
    }
}

/// Levels are equal when their nodes are, however each is stored.
impl PartialEq for Level {
    fn eq(&self, other: &Self) -> bool {
        self.non_empty().eq(other.non_empty())
    }
}

impl Eq for Level {}

impl core::fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MerkleTree {{ root: {:#010x} }}", self.root)
    }
}

impl Default for MerkleTree {
    fn default() -> Self {
        Self::new()
    }
}

/// A path in the tree: up to 3 lowercase hex digits.
fn parse_path(path: &str) -> Option<(usize, usize)> {
    if path.len() > 3 {
        return None;
    }
    path.bytes().try_fold((0usize, 0usize), |(len, index), b| {
        let digit = char::from(b).to_digit(16)?;
        (!b.is_ascii_uppercase()).then_some((len + 1, index * 16 + digit as usize))
    })
}

impl MerkleTree {
    /// An empty tree (root 0).
    pub fn new() -> Self {
        Self { root: 0, l1: [Node::default(); 16], l2: Level::Sparse(Vec::new()), l3: Level::Sparse(Vec::new()) }
    }

    /// The root hash.
    pub fn root(&self) -> u32 {
        self.root
    }

    /// Records a change of one key's item hash. `old`/`new` are `None` when the key had or has no
    /// item. `key_hash` is `fnv1a(key)`.
    pub fn update(&mut self, key_hash: u32, old: Option<u32>, new: Option<u32>) {
        if old == new {
            return;
        }
        let i3 = (key_hash >> 20) as usize;
        let i2 = i3 >> 4;
        let i1 = i2 >> 4;
        let count_change = match (old.is_some(), new.is_some()) {
            (false, true) => 1,
            (true, false) => u32::MAX, // -1, wrapping
            _ => 0,
        };
        // Each level swaps its child's old contribution for the new one (a leaf's child is the item).
        let (b3, a3) = self.l3.node_mut(i3, LEAVES).change(old.map_or(0, mix), new.map_or(0, mix), count_change);
        let (b2, a2) = self.l2.node_mut(i2, 256).change(mix(b3), mix(a3), count_change);
        let (b1, a1) = self.l1[i1].change(mix(b2), mix(a2), count_change);
        self.root = self.root.wrapping_sub(mix(b1)).wrapping_add(mix(a1));
    }

    /// The hash of the node at `path` (`""` is the root), or `None` for an invalid path.
    pub fn hash_at(&self, path: &str) -> Option<u32> {
        let (len, index) = parse_path(path)?;
        Some(match len {
            0 => self.root,
            _ => self.node(len, index).hash,
        })
    }

    /// The non-empty children of the inner node at `path` (0 to 2 hex digits) as
    /// `(child digit, hash)`, in digit order. Empty for a leaf path, an invalid path or an empty node.
    pub fn buckets(&self, path: &str) -> Vec<(char, u32)> {
        let Some((len, index)) = parse_path(path) else { return Vec::new() };
        if len == 3 {
            return Vec::new();
        }
        let base = index * 16;
        (0..16)
            .filter_map(|d| {
                let child = self.node(len + 1, base + d);
                Some((char::from_digit(d as u32, 16)?, child.hash)).filter(|_| child.count > 0)
            })
            .collect()
    }

    /// The node at path length `len` (1 to 3) and `index`.
    fn node(&self, len: usize, index: usize) -> Node {
        match len {
            1 => self.l1[index],
            2 => self.l2.get(index),
            _ => self.l3.get(index),
        }
    }

    /// The hash and key count of the node `index` at `level` (0 is the root, 3 the leaves; the
    /// index is the path's digits as a number): sync's catch-up walks the tree by these numbers
    /// rather than by text paths. `(0, 0)` past the last level or index.
    pub fn node_at(&self, level: usize, index: usize) -> (u32, u32) {
        match level {
            0 if index == 0 => (self.root, self.l1.iter().map(|n| n.count).sum()),
            1..=3 if index < 1 << (4 * level) => {
                let node = self.node(level, index);
                (node.hash, node.count)
            }
            _ => (0, 0),
        }
    }

    /// Number of keys under `path`.
    pub fn count_at(&self, path: &str) -> u32 {
        match parse_path(path) {
            Some((0, _)) => self.l1.iter().map(|n| n.count).sum(),
            Some((len, i)) => self.node(len, i).count,
            None => 0,
        }
    }

    /// True when `key_hash` (`fnv1a(key)`) lies under `path`.
    pub fn is_under(key_hash: u32, path: &str) -> bool {
        match parse_path(path) {
            Some((len, index)) => len == 0 || (key_hash >> (32 - 4 * len)) as usize == index,
            None => false,
        }
    }
}
