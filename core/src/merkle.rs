//! The depth-3 Merkle tree of SPEC section 5, kept up to date in O(1) per change.
//!
//! A key's path is `fnv1a(key)` as 8 hex digits; level `i` branches on digit `i`, so the tree has
//! 16 + 256 inner nodes and 4096 leaves, stored in flat arrays indexed by the path's top bits. Since a
//! node's hash is the wrapping sum of `mix` of its children, a change is applied by subtracting the
//! old contribution and adding the new one at each of the four levels, and `mix(0) == 0` means empty
//! subtrees contribute nothing: removing a key leaves no trace.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::hash::mix;

const LEAVES: usize = 4096;

/// Incrementally maintained hashes and key counts of one map's Merkle tree.
#[derive(Clone, PartialEq, Eq)]
pub struct MerkleTree {
    root: u32,
    /// Hashes of nodes at path lengths 1, 2 and 3 (leaves), indexed by the path's digits.
    l1: [u32; 16],
    l2: Box<[u32; 256]>,
    l3: Box<[u32; LEAVES]>,
    /// Keys below each node, to tell an empty subtree from one whose hashes sum to zero.
    count1: [u32; 16],
    count2: Box<[u32; 256]>,
    count3: Box<[u32; LEAVES]>,
}

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
        Self {
            root: 0,
            l1: [0; 16],
            l2: Box::new([0; 256]),
            l3: Box::new([0; LEAVES]),
            count1: [0; 16],
            count2: Box::new([0; 256]),
            count3: Box::new([0; LEAVES]),
        }
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
        let before = self.l3[i3];
        let leaf = before.wrapping_sub(old.map_or(0, mix)).wrapping_add(new.map_or(0, mix));
        self.l3[i3] = leaf;
        let before2 = self.l2[i2];
        self.l2[i2] = before2.wrapping_sub(mix(before)).wrapping_add(mix(leaf));
        let before1 = self.l1[i1];
        self.l1[i1] = before1.wrapping_sub(mix(before2)).wrapping_add(mix(self.l2[i2]));
        self.root = self.root.wrapping_sub(mix(before1)).wrapping_add(mix(self.l1[i1]));
        match (old.is_some(), new.is_some()) {
            (false, true) => {
                self.count3[i3] += 1;
                self.count2[i2] += 1;
                self.count1[i1] += 1;
            }
            (true, false) => {
                self.count3[i3] -= 1;
                self.count2[i2] -= 1;
                self.count1[i1] -= 1;
            }
            _ => {}
        }
    }

    /// The hash of the node at `path` (`""` is the root), or `None` for an invalid path.
    pub fn hash_at(&self, path: &str) -> Option<u32> {
        let (len, index) = parse_path(path)?;
        Some(match len {
            0 => self.root,
            1 => self.l1[index],
            2 => self.l2[index],
            _ => self.l3[index],
        })
    }

    /// The non-empty children of the inner node at `path` (0 to 2 hex digits) as
    /// `(child digit, hash)`, in digit order. Empty for a leaf path, an invalid path or an empty node.
    pub fn buckets(&self, path: &str) -> Vec<(char, u32)> {
        let Some((len, index)) = parse_path(path) else { return Vec::new() };
        let (hashes, counts): (&[u32], &[u32]) = match len {
            0 => (&self.l1, &self.count1),
            1 => (&self.l2[..], &self.count2[..]),
            2 => (&self.l3[..], &self.count3[..]),
            _ => return Vec::new(),
        };
        let base = index * 16;
        (0..16)
            .filter(|d| counts[base + d] > 0)
            .filter_map(|d| Some((char::from_digit(d as u32, 16)?, hashes[base + d])))
            .collect()
    }

    /// Number of keys under `path`.
    pub fn count_at(&self, path: &str) -> u32 {
        match parse_path(path) {
            Some((0, _)) => self.count1.iter().sum(),
            Some((1, i)) => self.count1[i],
            Some((2, i)) => self.count2[i],
            Some((_, i)) => self.count3[i],
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
