//! SPEC sections 2 and 5: pinned hash vectors, computed independently from the SPEC's definitions
//! (FNV-1a folding each UTF-16 code unit, fmix32, wrapping sums), not from this crate.

mod common;

use common::clock;
use onegrid_core::{LwwMap, MerkleTree, NodeId, OrMap, OrRecord, Timestamp, Value};
use onegrid_core::{combine, fnv1a, mix, partition_of};

#[test]
fn fnv1a_vectors() {
    assert_eq!(fnv1a(""), 0x811c_9dc5);
    assert_eq!(fnv1a("a"), 0xe40c_292c);
    assert_eq!(fnv1a("foobar"), 0xbf9c_f968);
    assert_eq!(fnv1a("key-1"), 0x57e0_3446);
    // Non-ASCII: one UTF-16 unit each, folded as a whole value (not its UTF-8 bytes).
    assert_eq!(fnv1a("é"), 0x6c0b_6c44);
    assert_eq!(fnv1a("日本"), 0x5ffc_bea4);
    // A surrogate pair: two units, 0xD83D then 0xDE00.
    assert_eq!(fnv1a("😀"), 0xcb31_c4b8);
    assert_eq!(fnv1a("a😀b"), 0x8fca_8501);
}

#[test]
fn mix_and_combine_vectors() {
    assert_eq!(mix(0), 0);
    assert_eq!(mix(1), 0x514e_28b7);
    assert_eq!(mix(0xdead_beef), 0x0de5_c6a9);
    assert_eq!(combine([]), 0);
    assert_eq!(combine([1, 2, 3]), 0x0833_9fe4);
    assert_eq!(combine([3, 1, 2]), combine([1, 2, 3]), "order does not matter");
}

#[test]
fn partitions_are_fnv_mod_271() {
    assert_eq!(partition_of(""), 199);
    assert_eq!(partition_of("a"), 101);
    assert_eq!(partition_of("key-1"), 236);
    assert_eq!(partition_of("😀"), 102);
    assert!((0..10_000).all(|i| partition_of(&format!("k{i}")) < 271));
}

fn record(value: Option<Value>, millis: u64, counter: u32, id: &str) -> onegrid_core::LwwRecord {
    onegrid_core::LwwRecord {
        value,
        timestamp: Timestamp::new(millis, counter, NodeId::new(id).expect("node")),
        ttl_ms: None,
    }
}

#[test]
fn a_small_lww_tree_has_the_pinned_root() {
    // Items: fnv1a("a:100:0:n1") = 0x213702ea, fnv1a("b:100:1:n1") = 0x43f7d4e4,
    // fnv1a("c:200:0:n2") = 0x4a39462a; paths e40c292c, e70c2de5, e60c2c52 share digit "e".
    let mut map = LwwMap::new();
    let mut c = clock("x");
    map.merge(&mut c, 0, "a", record(Some(Value::from(1)), 100, 0, "n1")).expect("merge");
    map.merge(&mut c, 0, "b", record(Some(Value::Null), 100, 1, "n1")).expect("merge");
    map.merge(&mut c, 0, "c", record(None, 200, 0, "n2")).expect("merge");
    assert_eq!(map.root(), 0x8394_c522);
    // The tree's levels by hand: leaf "e40" holds only "a".
    assert_eq!(map.tree().hash_at("e40"), Some(combine([0x2137_02ea])));
    assert_eq!(
        map.tree().hash_at("e"),
        Some(combine([
            combine([combine([0x2137_02ea])]),
            { combine([combine([0x43f7_d4e4])]) },
            combine([combine([0x4a39_462a])])
        ]))
    );
    assert_eq!(map.tree().buckets(""), vec![('e', map.tree().hash_at("e").expect("e"))]);
    let digits: Vec<char> = map.tree().buckets("e").iter().map(|b| b.0).collect();
    assert_eq!(digits, vec!['4', '6', '7']);
    assert_eq!(map.leaf_keys("e40"), vec!["a"]);
    assert_eq!(map.leaf_keys("e"), vec!["a", "b", "c"]);
    assert!(map.leaf_keys("f").is_empty());
}

#[test]
fn an_or_entry_hash_sorts_tags_bytewise_and_uses_canonical_json() {
    // "key:k|10:2:n2:1.5:10:2:n2:ttl=500|5:0:n1:{\"a\":[true,null,\"x\"],\"b\":1}:5:0:n1"
    // hashes to 0x9ff378c6; "10:..." sorts before "5:..." byte-wise. Single key => root is
    // mix-combined through the three levels.
    let mut map = OrMap::new();
    let mut c = clock("x");
    let object =
        Value::map([("b", Value::from(1)), ("a", Value::list([Value::Bool(true), Value::Null, Value::from("x")]))])
            .expect("map");
    let n1 = NodeId::new("n1").expect("node");
    let n2 = NodeId::new("n2").expect("node");
    map.apply(&mut c, 0, "k", OrRecord { value: object, timestamp: Timestamp::new(5, 0, n1), ttl_ms: None })
        .expect("apply");
    map.apply(
        &mut c,
        0,
        "k",
        OrRecord { value: Value::from(1.5), timestamp: Timestamp::new(10, 2, n2), ttl_ms: Some(500) },
    )
    .expect("apply");
    let leaf = combine([0x9ff3_78c6]);
    assert_eq!(map.root(), combine([combine([combine([leaf])])]));
    assert_eq!(map.root(), 0xf6a7_b290);
}

#[test]
fn an_empty_tree_has_root_zero_and_no_buckets() {
    let tree = MerkleTree::new();
    assert_eq!(tree.root(), 0);
    assert!(tree.buckets("").is_empty());
    assert_eq!(tree.hash_at("xyz"), None, "not a hex path");
    assert_eq!(tree.hash_at("ABC"), None, "hex digits are lowercase");
    assert_eq!(tree.hash_at("abcd"), None, "deeper than a leaf");
}

/// Every node's hash and count, recomputed from scratch from `items` (key hash -> item hash), must
/// equal the incremental tree's, at every path of every level.
fn assert_matches_scratch(tree: &MerkleTree, items: &std::collections::BTreeMap<u32, u32>) {
    let mut leaf_items = vec![Vec::new(); 4096];
    for (key_hash, item) in items {
        leaf_items[(key_hash >> 20) as usize].push(*item);
    }
    let leaf: Vec<u32> = leaf_items.iter().map(|hashes| combine(hashes.iter().copied())).collect();
    let level2: Vec<u32> = (0..256).map(|i| combine(leaf[i * 16..i * 16 + 16].iter().copied())).collect();
    let level1: Vec<u32> = (0..16).map(|i| combine(level2[i * 16..i * 16 + 16].iter().copied())).collect();
    let counts: Vec<Vec<usize>> = (0..4)
        .map(|len| {
            let mut level = vec![0; 1 << (4 * len)];
            for (l, v) in leaf_items.iter().enumerate() {
                level[l >> (4 * (3 - len))] += v.len();
            }
            level
        })
        .collect();
    let count = |len: usize, i: usize| counts[len][i];
    assert_eq!(tree.root(), combine(level1.iter().copied()));
    for (len, hashes) in [(1, &level1), (2, &level2), (3, &leaf)] {
        for (i, hash) in hashes.iter().enumerate() {
            let path = format!("{i:0len$x}");
            assert_eq!(tree.hash_at(&path), Some(*hash), "node {path}");
            assert_eq!(tree.count_at(&path) as usize, count(len, i), "keys under {path}");
        }
    }
    for len in 0..3 {
        for i in 0..(1 << (4 * len)) {
            let path = if len == 0 { String::new() } else { format!("{i:0len$x}") };
            let expected: Vec<(char, u32)> = (0..16)
                .filter(|d| count(len + 1, i * 16 + d) > 0)
                .map(|d| {
                    (
                        char::from_digit(d as u32, 16).expect("a hex digit"),
                        tree.hash_at(&format!("{path}{d:x}")).expect("a valid path"),
                    )
                })
                .collect();
            assert_eq!(tree.buckets(&path), expected, "buckets of {path:?}");
        }
    }
}

#[test]
fn the_tree_matches_a_recomputation_as_it_grows_past_sparse_and_shrinks_to_empty() {
    // A level starts as a list of the nodes it has used and turns into an array past 1/16 of them:
    // check every node after each of the first 300 keys (with this seed level 2 switches at about
    // the 16th key and level 3 at about the 263rd), now and then far past, then as keys go away.
    let mut tree = MerkleTree::new();
    let mut items = std::collections::BTreeMap::new();
    let mut state = 0x2545_f491_u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let mut keys = Vec::new();
    for round in 0..1200 {
        let key_hash = next();
        let item = next() | 1;
        tree.update(key_hash, None, Some(item));
        items.insert(key_hash, item);
        keys.push(key_hash);
        if round < 300 || round % 97 == 0 {
            assert_matches_scratch(&tree, &items);
        }
    }
    assert_matches_scratch(&tree, &items);
    for (i, key_hash) in keys.iter().enumerate() {
        let old = items[key_hash];
        if i % 3 == 0 {
            let new = next() | 1;
            tree.update(*key_hash, Some(old), Some(new));
            items.insert(*key_hash, new);
        } else {
            tree.update(*key_hash, Some(old), None);
            items.remove(key_hash);
        }
    }
    assert_matches_scratch(&tree, &items);
    for (key_hash, item) in std::mem::take(&mut items) {
        tree.update(key_hash, Some(item), None);
    }
    assert_matches_scratch(&tree, &items);
    assert_eq!(tree, MerkleTree::new(), "an emptied tree equals a new one, dense levels or not");
}

#[test]
fn removing_a_key_and_adding_it_back_gives_the_earlier_tree_again() {
    // SPEC 5: a removed key leaves no trace, so re-adding the same item gives the earlier root
    // again, with the tree's levels sparse (few keys) or dense (hundreds).
    for size in [1_u32, 20, 600] {
        let mut state = 0x9e37_79b9_u32 ^ size;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let items: Vec<(u32, u32)> = (0..size).map(|_| (next(), next() | 1)).collect();
        let mut tree = MerkleTree::new();
        for (key_hash, item) in &items {
            tree.update(*key_hash, None, Some(*item));
        }
        let before = tree.clone();
        for (key_hash, item) in items.iter().step_by(7) {
            tree.update(*key_hash, Some(*item), None);
            assert_ne!(tree.root(), before.root(), "{size} keys: the removal shows");
            tree.update(*key_hash, None, Some(*item));
            assert_eq!(tree.root(), before.root(), "{size} keys: the earlier root again");
            assert!(tree == before, "{size} keys: the earlier tree again");
        }
    }
}
