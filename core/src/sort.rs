//! One sort for the whole crate. Every `sort`/`sort_by` call site over its own element type costs the
//! wasm module a copy of the standard library's sort (kilobytes each; see BENCHMARKS.md), so
//! every sort by key goes through [`by_key`], [`sorted_copy`] or [`order`]: they sort
//! `(key bytes, position)` pairs with the one instance of `sort_unstable` in [`sort_keyed`], then
//! move the items into that order. The position breaks ties, so the result is that of a stable sort.

use alloc::vec::Vec;

/// Sorts `items` by the byte order of `key` (for `str` keys, their order as `str`); items with equal
/// keys keep their order.
pub(crate) fn by_key<T>(items: &mut [T], key: impl Fn(&T) -> &[u8]) {
    // Short or already sorted (an OR key's one record, tags in timestamp order): no allocation.
    if items.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        return;
    }
    let order = order(items.iter().map(key));
    permute(items, order);
}

/// The positions of `keys` in sorted order (equal keys in their order).
pub(crate) fn order<'a>(keys: impl Iterator<Item = &'a [u8]>) -> Vec<usize> {
    let mut keyed: Vec<(&[u8], usize)> = keys.zip(0..).collect();
    sort_keyed(&mut keyed);
    keyed.into_iter().map(|(_, at)| at).collect()
}

/// [`by_key`] for `Copy` items, into a new vector: gathering the items in order is cheaper than
/// moving them into place when they are large and many (a snapshot's records).
pub(crate) fn sorted_copy<T: Copy>(items: &[T], key: impl Fn(&T) -> &[u8]) -> Vec<T> {
    let mut keyed: Vec<(&[u8], usize)> = items.iter().map(key).zip(0..).collect();
    sort_keyed(&mut keyed);
    keyed.into_iter().map(|(_, at)| items[at]).collect()
}

/// Sorts `items` by a timestamp of each, in the timestamps' order (millis, counter, node id
/// bytes), through the one sort: the keys are those three as big-endian bytes.
pub(crate) fn by_timestamp<T>(items: &mut [T], ts: impl Fn(&T) -> &crate::hlc::Timestamp) {
    let keys: Vec<Vec<u8>> = items
        .iter()
        .map(|item| {
            let t = ts(item);
            let mut key = Vec::with_capacity(12 + t.node_id.as_str().len());
            key.extend_from_slice(&t.millis.to_be_bytes());
            key.extend_from_slice(&t.counter.to_be_bytes());
            key.extend_from_slice(t.node_id.as_str().as_bytes());
            key
        })
        .collect();
    let order = order(keys.iter().map(Vec::as_slice));
    permute(items, order);
}

/// Sorts `items` by a key of bytes made for each (big-endian numbers sort as numbers); items with
/// equal keys keep their order.
pub(crate) fn by_made_key<T, K: AsRef<[u8]>>(items: &mut [T], key: impl Fn(&T) -> K) {
    let keys: Vec<K> = items.iter().map(key).collect();
    let order = order(keys.iter().map(AsRef::as_ref));
    permute(items, order);
}

/// Sorts strings (`String`, `&str`, `Box<str>`) by their bytes.
pub(crate) fn strs<T: AsRef<str>>(items: &mut [T]) {
    by_key(items, |s| s.as_ref().as_bytes());
}

/// The crate's one sort instance.
#[inline(never)]
fn sort_keyed(keyed: &mut [(&[u8], usize)]) {
    keyed.sort_unstable();
}

/// Moves `items` so that position `j` holds what was at `order[j]` (a permutation of the
/// positions), following each cycle with swaps.
fn permute<T>(items: &mut [T], mut order: Vec<usize>) {
    for start in 0..order.len() {
        let mut at = start;
        while order[at] != start {
            let next = order[at];
            items.swap(at, next);
            order[at] = at;
            at = next;
        }
        order[at] = at;
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn sorts_stably_by_key() {
        let mut items: Vec<(&str, u32)> = vec![("b", 0), ("a", 1), ("c", 2), ("a", 3), ("", 4), ("b", 5), ("ab", 6)];
        let mut expected = items.clone();
        expected.sort_by(|x, y| x.0.cmp(y.0));
        assert_eq!(super::sorted_copy(&items, |x| x.0.as_bytes()), expected);
        super::by_key(&mut items, |x| x.0.as_bytes());
        assert_eq!(items, expected);
    }

    #[test]
    fn sorts_every_permutation_of_a_few() {
        // All orders of 5 distinct items, and of 5 items with repeats.
        for keys in [["d", "b", "e", "a", "c"], ["b", "a", "b", "a", "c"]] {
            let mut idx = [0usize, 1, 2, 3, 4];
            let mut count = 0;
            loop {
                let mut items: Vec<(&str, usize)> = idx.iter().map(|&i| (keys[i], i)).collect();
                let mut expected = items.clone();
                expected.sort_by(|x, y| x.0.cmp(y.0));
                assert_eq!(super::sorted_copy(&items, |x| x.0.as_bytes()), expected);
                super::by_key(&mut items, |x| x.0.as_bytes());
                assert_eq!(items, expected);
                count += 1;
                // next permutation of idx
                let Some(i) = (0..4).rev().find(|&i| idx[i] < idx[i + 1]) else { break };
                let j = (i + 1..5).rev().find(|&j| idx[j] > idx[i]).unwrap_or(i + 1);
                idx.swap(i, j);
                idx[i + 1..].reverse();
            }
            assert_eq!(count, 120);
        }
    }
}
