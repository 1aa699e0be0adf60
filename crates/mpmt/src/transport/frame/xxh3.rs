//! XXH3-64 of long payloads for frames read and written in place: the writer's copy into the
//! ring fused with its checksum, and the reader's checksum with software prefetch.
//!
//! The frame checksum is XXH3-64 (`twox-hash`, see the parent module). For payloads of more
//! than 240 bytes XXH3 is a loop over 64-byte *stripes*: each stripe, XORed with 64 bytes of
//! a secret derived from the seed, is folded into eight 64-bit accumulators (a 32×32-bit
//! multiply and an add per lane), the accumulators are scrambled after every 16-stripe
//! *block*, and the last stripe and a merge of the accumulators finish the hash
//! (Y. Collet, *XXH3 algorithm overview* and `xxhash.h`, `XXH3_hashLong_64b_internal`; the
//! default secret below is the one of that reference). This module computes exactly that
//! value, so the wire format does not change and a frame hashed here verifies with
//! `twox-hash` and back (the tests compare both on lengths around every boundary), but with
//! its own AVX2 loop, for two measured reasons (`transport/shm/README.md`, "Throughput"):
//!
//! * **Reader, in place.** The payload lies in the ring, written by the other process on
//!   another core, so every cache line comes from that core's cache. `twox-hash`'s loop
//!   reads them at about 12 GB/s here; the same loop issuing a prefetch 4 KiB ahead keeps
//!   enough of those transfers in flight to read them at about 20 GB/s. This is what limits
//!   shm's one-way throughput.
//! * **Writer, in place.** Copying a payload into the ring and hashing it are one pass over
//!   the source: each stripe is loaded once, stored into the ring and folded into the
//!   accumulators from the same registers, instead of a copy and a second read of each
//!   piece while it is in L1.
//!
//! Without AVX2 (an old x86 or another architecture) both fall back to `twox-hash` (its SSE2
//! or NEON kernel), copying 16 KiB at a time and hashing each piece while it is in L1.
//!
//! # Safety
//!
//! The unsafe code is the AVX2 loop: it runs only where `is_x86_feature_detected!("avx2")`
//! said so, and every load and store stays inside the slices it was given (their lengths are
//! checked before the loop; see the `SAFETY` comments). Prefetches never fault; they stay
//! inside the slice being hashed anyway.
#![allow(unsafe_code)]

use std::hash::Hasher as _;

use twox_hash::XxHash3_64;

/// Bytes folded into the accumulators at a time.
const STRIPE: usize = 64;
/// Length of XXH3's default secret (and of one derived from a seed).
const SECRET_LEN: usize = 192;
/// Stripes between two scrambles: the secret advances 8 bytes per stripe.
const STRIPES_PER_BLOCK: usize = (SECRET_LEN - STRIPE) / 8;
/// Bytes between two scrambles.
pub(super) const BLOCK: usize = STRIPE * STRIPES_PER_BLOCK;
/// Shortest payload taking XXH3's long path (shorter ones are `twox-hash`'s).
pub(super) const MIN_LEN: usize = 241;
/// How far ahead of the stripe being hashed its source is prefetched (measured on 1 MiB
/// written by the other core: 2–16 KiB ahead alike, 1 KiB ahead less).
const PREFETCH: usize = 4096;
/// Pieces copied then hashed at a time without AVX2 (fits L1 with room to spare).
const FALLBACK_CHUNK: usize = 16 * 1024;

const PRIME32_1: u64 = 0x9E37_79B1;
const PRIME32_2: u64 = 0x85EB_CA77;
const PRIME32_3: u64 = 0xC2B2_AE3D;
const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;
const PRIME_MX1: u64 = 0x1656_6791_9E37_79F9;

/// XXH3's default secret (`XXH3_kSecret`).
#[rustfmt::skip]
const DEFAULT_SECRET: [u8; SECRET_LEN] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
];

fn read64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The XXH3-64 of `data` with `seed`, as `twox-hash` computes it; long inputs through the
/// prefetching AVX2 loop (module docs).
pub(super) fn hash(seed: u64, data: &[u8]) -> u64 {
    if data.len() < MIN_LEN || !avx2() {
        return XxHash3_64::oneshot_with_seed(seed, data);
    }
    CopyHash::new(seed).finish(None, data)
}

/// Whether the AVX2 loop may run here (the detection is cached by `std`).
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One long XXH3-64 under way: fed whole [`BLOCK`]s with [`CopyHash::blocks`], each copied to
/// its destination on the way, then [`CopyHash::finish`]ed with the rest.
pub(super) struct CopyHash {
    state: State,
    /// Bytes copied and hashed so far (whole blocks).
    done: usize,
}

enum State {
    /// The accumulators and the secret derived from the seed.
    Avx2 { acc: [u64; 8], secret: [u8; SECRET_LEN] },
    /// No AVX2: `twox-hash`'s streaming hasher.
    Fallback(XxHash3_64),
}

impl CopyHash {
    /// A hash seeded with `seed` (XXH3's derived secret: `XXH3_initCustomSecret`).
    pub(super) fn new(seed: u64) -> CopyHash {
        let state = if avx2() {
            let mut secret = DEFAULT_SECRET;
            for (i, pair) in secret.chunks_exact_mut(16).enumerate() {
                let lo = read64(&DEFAULT_SECRET, 16 * i).wrapping_add(seed);
                let hi = read64(&DEFAULT_SECRET, 16 * i + 8).wrapping_sub(seed);
                pair[..8].copy_from_slice(&lo.to_le_bytes());
                pair[8..].copy_from_slice(&hi.to_le_bytes());
            }
            let acc = [
                PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5,
                PRIME32_1,
            ];
            State::Avx2 { acc, secret }
        } else {
            State::Fallback(XxHash3_64::with_seed(seed))
        };
        CopyHash { state, done: 0 }
    }

    /// The `twox-hash` fallback whatever the CPU (for its tests).
    #[cfg(test)]
    fn fallback(seed: u64) -> CopyHash {
        CopyHash { state: State::Fallback(XxHash3_64::with_seed(seed)), done: 0 }
    }

    /// Bytes hashed so far.
    pub(super) fn done(&self) -> usize {
        self.done
    }

    /// Copies `src`, the next whole blocks of the input, to `dst` (as long) and hashes them.
    /// More input must follow (XXH3 treats the last block apart).
    ///
    /// # Panics
    ///
    /// If `src` is not whole blocks or `dst` is not as long.
    pub(super) fn blocks(&mut self, dst: &mut [u8], src: &[u8]) {
        assert!(src.len().is_multiple_of(BLOCK) && dst.len() == src.len(), "whole blocks");
        self.run(Some(dst), src, true);
        self.done += src.len();
    }

    /// Copies and hashes stripes of `src`: whole blocks (`scramble`) or fewer stripes than a
    /// block, starting at a block's start.
    fn run(&mut self, dst: Option<&mut [u8]>, src: &[u8], scramble: bool) {
        match &mut self.state {
            #[cfg(target_arch = "x86_64")]
            State::Avx2 { acc, secret } => {
                // SAFETY: `State::Avx2` is built only where `avx2()` detected the feature.
                unsafe { avx2::stripes(acc, secret, dst, src, scramble) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            State::Avx2 { .. } => unreachable!("built only where AVX2 was detected"),
            State::Fallback(hasher) => {
                let Some(dst) = dst else {
                    hasher.write(src);
                    return;
                };
                for (d, s) in dst.chunks_mut(FALLBACK_CHUNK).zip(src.chunks(FALLBACK_CHUNK)) {
                    d.copy_from_slice(s);
                    hasher.write(s);
                }
            }
        }
    }

    /// Copies the rest of the input to `dst` (if given) and hashes it, returning the hash of
    /// the whole input. `src` is the whole input (its first [`CopyHash::done`] bytes already
    /// hashed), `dst` as long.
    ///
    /// # Panics
    ///
    /// If `src` is shorter than [`MIN_LEN`] or than what was hashed already, or `dst` is not
    /// as long.
    pub(super) fn finish(mut self, mut dst: Option<&mut [u8]>, src: &[u8]) -> u64 {
        let len = src.len();
        assert!(len >= MIN_LEN && len > self.done, "{len} bytes after {}", self.done);
        assert!(dst.as_ref().is_none_or(|d| d.len() == len), "destination as long as the source");
        if let State::Fallback(_) = self.state {
            let done = self.done;
            self.run(dst.map(|d| &mut d[done..]), &src[done..], false);
            let State::Fallback(hasher) = self.state else { unreachable!("checked above") };
            return hasher.finish();
        }
        // `XXH3_hashLong_internal_loop`: the blocks, then the last block's whole stripes but
        // its last byte, then the last 64 bytes as one more stripe with its own secret offset.
        let full = (len - 1) / BLOCK * BLOCK;
        if full > self.done {
            let d = dst.as_deref_mut().map(|d| &mut d[self.done..full]);
            self.run(d, &src[self.done..full], true);
        }
        let end = full + (len - 1 - full) / STRIPE * STRIPE;
        let d = dst.as_deref_mut().map(|d| &mut d[full..end]);
        self.run(d, &src[full..end], false);
        if let Some(d) = dst {
            d[end..].copy_from_slice(&src[end..]);
        }
        let State::Avx2 { mut acc, secret } = self.state else { unreachable!("checked above") };
        let last = &src[len - STRIPE..];
        let key = &secret[SECRET_LEN - STRIPE - 7..SECRET_LEN - 7];
        for i in 0..8 {
            let v = read64(last, 8 * i);
            let k = v ^ read64(key, 8 * i);
            acc[i ^ 1] = acc[i ^ 1].wrapping_add(v);
            acc[i] = acc[i].wrapping_add((k & 0xffff_ffff).wrapping_mul(k >> 32));
        }
        // `XXH3_mergeAccs` and `XXH3_avalanche`.
        let mut h = (len as u64).wrapping_mul(PRIME64_1);
        for i in 0..4 {
            let a = acc[2 * i] ^ read64(&secret, 11 + 16 * i);
            let b = acc[2 * i + 1] ^ read64(&secret, 11 + 16 * i + 8);
            let m = u128::from(a) * u128::from(b);
            h = h.wrapping_add(m as u64 ^ (m >> 64) as u64);
        }
        h ^= h >> 37;
        h = h.wrapping_mul(PRIME_MX1);
        h ^ (h >> 32)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _MM_HINT_T0, _mm_prefetch, _mm256_add_epi64, _mm256_loadu_si256, _mm256_mul_epu32,
        _mm256_set1_epi32, _mm256_shuffle_epi32, _mm256_slli_epi64, _mm256_srli_epi64,
        _mm256_storeu_si256, _mm256_xor_si256,
    };

    use super::{PREFETCH, PRIME32_1, SECRET_LEN, STRIPE, STRIPES_PER_BLOCK};

    /// Folds the stripes of `src` (a multiple of [`STRIPE`] bytes that starts a block) into
    /// `acc`, storing each into `dst` too if given; scrambles after each whole block if
    /// `scramble` (then `src` is whole blocks).
    ///
    /// # Safety
    ///
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn stripes(
        acc: &mut [u64; 8],
        secret: &[u8; SECRET_LEN],
        dst: Option<&mut [u8]>,
        src: &[u8],
        scramble: bool,
    ) {
        assert!(
            src.len().is_multiple_of(STRIPE) && dst.as_ref().is_none_or(|d| d.len() == src.len())
        );
        let (len, n) = (src.len(), src.len() / STRIPE);
        let dst = dst.map(<[u8]>::as_mut_ptr);
        let (src, key) = (src.as_ptr(), secret.as_ptr());
        let acc = acc.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `acc` is 64 bytes (two unaligned 32-byte loads); `key + SECRET_LEN - 64`
        // has 64 bytes.
        let (mut a0, mut a1, s0, s1) = unsafe {
            let end = key.add(SECRET_LEN - STRIPE).cast::<__m256i>();
            (
                _mm256_loadu_si256(acc),
                _mm256_loadu_si256(acc.add(1)),
                _mm256_loadu_si256(end),
                _mm256_loadu_si256(end.add(1)),
            )
        };
        let prime = _mm256_set1_epi32(PRIME32_1 as i32);
        let mut i = 0;
        while i < n {
            let stripes = (n - i).min(STRIPES_PER_BLOCK);
            for j in 0..stripes {
                let at = (i + j) * STRIPE;
                // Only within `src`: past its end lie the bytes the writer is writing (the
                // next frame), whose lines a prefetch would pull away from it. (A prefetch
                // never faults, whatever the address.)
                if at + PREFETCH < len {
                    _mm_prefetch::<_MM_HINT_T0>(src.wrapping_add(at + PREFETCH).cast());
                }
                // SAFETY: `at + 64 <= n * 64 <= src.len()`, and `dst` (if any) is as long as
                // `src` (asserted above); `8 * j + 64 <= 8 * 15 + 64 < SECRET_LEN`, so the
                // key's 64 bytes lie in `secret`. Unaligned loads and stores.
                unsafe {
                    let s = src.add(at).cast::<__m256i>();
                    let (v0, v1) = (_mm256_loadu_si256(s), _mm256_loadu_si256(s.add(1)));
                    if let Some(dst) = dst {
                        let d = dst.add(at).cast::<__m256i>();
                        _mm256_storeu_si256(d, v0);
                        _mm256_storeu_si256(d.add(1), v1);
                    }
                    let k = key.add(8 * j).cast::<__m256i>();
                    a0 = accumulate(a0, v0, _mm256_loadu_si256(k));
                    a1 = accumulate(a1, v1, _mm256_loadu_si256(k.add(1)));
                }
            }
            if scramble && stripes == STRIPES_PER_BLOCK {
                a0 = scramble_acc(a0, s0, prime);
                a1 = scramble_acc(a1, s1, prime);
            }
            i += stripes;
        }
        // SAFETY: as for the loads of `acc` above.
        unsafe {
            _mm256_storeu_si256(acc, a0);
            _mm256_storeu_si256(acc.add(1), a1);
        }
    }

    /// `XXH3_accumulate_512` on four lanes: `acc[i ^ 1] += v[i]`, `acc[i] += lo32(v ^ k) *
    /// hi32(v ^ k)`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn accumulate(acc: __m256i, v: __m256i, k: __m256i) -> __m256i {
        let x = _mm256_xor_si256(v, k);
        let product = _mm256_mul_epu32(x, _mm256_srli_epi64::<32>(x));
        let swapped = _mm256_shuffle_epi32::<0b01_00_11_10>(v);
        _mm256_add_epi64(acc, _mm256_add_epi64(swapped, product))
    }

    /// `XXH3_scrambleAcc` on four lanes: `(acc ^ acc >> 47 ^ k) * PRIME32_1`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn scramble_acc(acc: __m256i, k: __m256i, prime: __m256i) -> __m256i {
        let a = _mm256_xor_si256(_mm256_xor_si256(acc, _mm256_srli_epi64::<47>(acc)), k);
        let lo = _mm256_mul_epu32(a, prime);
        let hi = _mm256_mul_epu32(_mm256_srli_epi64::<32>(a), prime);
        _mm256_add_epi64(lo, _mm256_slli_epi64::<32>(hi))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8) ^ (i >> 16)) as u8).collect()
    }

    /// Copies and hashes `src` as the frame writer does: whole `step`s while more follows.
    fn copy_hash(seed: u64, src: &[u8], step: usize) -> (u64, Vec<u8>) {
        copy_hash_with(CopyHash::new(seed), src, step)
    }

    fn copy_hash_with(mut h: CopyHash, src: &[u8], step: usize) -> (u64, Vec<u8>) {
        let mut dst = vec![0u8; src.len()];
        while h.done() + step < src.len() {
            let at = h.done();
            h.blocks(&mut dst[at..at + step], &src[at..at + step]);
        }
        (h.finish(Some(&mut dst), src), dst)
    }

    #[test]
    fn equals_twox_around_every_boundary() {
        let src = pattern(3 << 20);
        let mut lens = vec![MIN_LEN, 255, 256, 300, 1 << 20, (1 << 20) + 24, 3 << 20];
        for blocks in 1..5 {
            for delta in [-65isize, -64, -63, -1, 0, 1, 63, 64, 65] {
                lens.push((blocks * BLOCK).checked_add_signed(delta).unwrap());
            }
        }
        for len in lens {
            for seed in [0, 1, 0xdead_beef_1234_5678, u64::MAX] {
                let want = XxHash3_64::oneshot_with_seed(seed, &src[..len]);
                assert_eq!(hash(seed, &src[..len]), want, "hash of {len} bytes, seed {seed}");
                for step in [BLOCK, 16 * BLOCK, 64 * BLOCK] {
                    let (got, dst) = copy_hash(seed, &src[..len], step);
                    assert_eq!(got, want, "copy_hash of {len} bytes, seed {seed}, step {step}");
                    assert!(dst == src[..len], "copy of {len} bytes");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn equals_twox_on_any_input(
            data in proptest::collection::vec(any::<u8>(), MIN_LEN..20_000),
            seed in any::<u64>(),
            step_blocks in 1usize..8,
        ) {
            let want = XxHash3_64::oneshot_with_seed(seed, &data);
            prop_assert_eq!(hash(seed, &data), want);
            let (got, dst) = copy_hash(seed, &data, step_blocks * BLOCK);
            prop_assert_eq!(got, want);
            prop_assert_eq!(&dst, &data);
            let (got, dst) = copy_hash_with(CopyHash::fallback(seed), &data, step_blocks * BLOCK);
            prop_assert_eq!(got, want);
            prop_assert_eq!(dst, data);
        }

        #[test]
        fn a_flipped_bit_changes_the_hash(
            len in MIN_LEN..20_000usize,
            bit in any::<usize>(),
            seed in any::<u64>(),
        ) {
            let mut data = pattern(len);
            let before = hash(seed, &data);
            data[(bit / 8) % len] ^= 1 << (bit % 8);
            prop_assert_ne!(hash(seed, &data), before);
        }
    }

    #[test]
    fn short_inputs_are_twox() {
        let src = pattern(MIN_LEN);
        for len in [0, 1, 16, 17, 128, 129, MIN_LEN - 1] {
            assert_eq!(hash(7, &src[..len]), XxHash3_64::oneshot_with_seed(7, &src[..len]));
        }
    }
}
