//! The hashes of SPEC section 2: FNV-1a over UTF-16 code units, MurmurHash3's `fmix32`, their
//! order-independent combination, and the partition of a key.
//!
//! Hashing UTF-16 units (not UTF-8 bytes) matches what a JavaScript peer computes from
//! `String.charCodeAt`, so Merkle roots compare across runtimes and with TopGun peers.

use core::fmt;

/// Number of partitions a grid's key space is cut into.
pub const PARTITION_COUNT: u32 = 271;

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// A streaming 32-bit FNV-1a hasher over UTF-16 code units.
///
/// It implements [`fmt::Write`], so composite strings (`"key:millis:counter:node"`, canonical JSON)
/// are hashed as they are formatted, without building them first.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u32);

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a {
    /// A hasher at FNV's offset basis (the hash of the empty string).
    pub const fn new() -> Self {
        Self(FNV_OFFSET)
    }

    /// Folds in one UTF-16 code unit as a single value.
    #[inline]
    pub fn write_unit(&mut self, unit: u16) {
        self.0 = (self.0 ^ u32::from(unit)).wrapping_mul(FNV_PRIME);
    }

    /// Folds in the UTF-16 code units of `s`.
    #[inline]
    pub fn write_text(&mut self, s: &str) {
        if s.is_ascii() {
            for &b in s.as_bytes() {
                self.write_unit(u16::from(b));
            }
        } else {
            for unit in s.encode_utf16() {
                self.write_unit(unit);
            }
        }
    }

    /// Folds in the decimal text of `n` (no allocation).
    #[inline]
    pub fn write_decimal(&mut self, n: u64) {
        let mut buf = [0u8; 20];
        for &digit in decimal(n, &mut buf) {
            self.write_unit(u16::from(digit));
        }
    }

    /// The hash so far.
    #[inline]
    pub const fn finish(self) -> u32 {
        self.0
    }
}

impl fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_text(s);
        Ok(())
    }
}

/// "00".."99": two digits per division when writing decimals (every hashed timestamp has some).
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes the decimal digits of `n` into the end of `buf` and returns them.
#[inline]
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    while n >= 10 {
        // `n % 100` is below 100, so the cast cannot truncate.
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if at == buf.len() || n > 0 {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    &buf[at..]
}

/// 32-bit FNV-1a of `s`, over its UTF-16 code units.
#[inline]
pub fn fnv1a(s: &str) -> u32 {
    let mut h = Fnv1a::new();
    h.write_text(s);
    h.finish()
}

/// MurmurHash3's 32-bit finaliser `fmix32`. `mix(0) == 0`, so empty subtrees add nothing.
#[inline]
pub const fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Order-independent combination of hashes: the wrapping sum of their [`mix`]. Empty is 0.
pub fn combine<I: IntoIterator<Item = u32>>(hashes: I) -> u32 {
    hashes.into_iter().fold(0u32, |acc, h| acc.wrapping_add(mix(h)))
}

/// The partition (0 to 270) that owns `key`.
#[inline]
pub fn partition_of(key: &str) -> u32 {
    fnv1a(key) % PARTITION_COUNT
}
