//! Finding the next byte where an identifier or a structure event can start.
//!
//! Almost every byte of a page is ordinary text, and the scanner's cost on a clean page was
//! mostly the loop that steps over it. On x86-64 with AVX2 this looks at 32 bytes per step with
//! the nibble-table test: a byte is special when the table entry of its low nibble and the one of
//! its high nibble share a bit. The special set has exactly eight distinct high nibbles, so one
//! bit per high nibble makes the test exact, not a superset. Elsewhere, and for the last bytes of
//! a window, a 256-entry table is read per byte.

/// A set of bytes the scanner stops at, with its nibble table for the vector search.
pub(crate) struct ByteSet {
    pub member: [bool; 256],
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    /// For each low nibble, the bits of the high nibbles ([`HIGH`]) that make a member with it.
    low: [u8; 16],
}

const fn byte_set(digits: bool, others: &[u8]) -> ByteSet {
    let mut member = [false; 256];
    if digits {
        let mut d = b'0';
        while d <= b'9' {
            member[d as usize] = true;
            d += 1;
        }
    }
    let mut k = 0;
    while k < others.len() {
        member[others[k] as usize] = true;
        k += 1;
    }
    let mut low = [0u8; 16];
    let mut b = 0usize;
    while b < 256 {
        if member[b] {
            // Every member's high nibble has its own bit; a set beyond these eight high
            // nibbles would need another table.
            assert!(HIGH[b >> 4] != 0);
            low[b & 15] |= HIGH[b >> 4];
        }
        b += 1;
    }
    ByteSet { member, low }
}

/// Every byte where something can start: identifiers (digits, `@`, the currency signs' lead
/// bytes) and structure (`<`, brackets, newlines). The same set as the scanner's byte classes
/// (checked by a test).
pub(crate) static EVERY: ByteSet = byte_set(
    true,
    &[b'@', b'<', b'{', b'}', b'[', b']', b'\n', b'$', 0xC2, 0xE2],
);

/// Only where identifiers and record features can start: what a scan without the structure
/// looks at.
pub(crate) static FEATURES: ByteSet = byte_set(true, &[b'@', b'$', 0xC2, 0xE2]);

/// Bit per high nibble of [`EVERY`]: 0x0 `\n`, 0x2 `$`, 0x3 digits and `<`, 0x4 `@`,
/// 0x5 `[` `]`, 0x7 `{` `}`, 0xC and 0xE the lead bytes of `£` and `€`.
const HIGH: [u8; 16] = [1, 0, 2, 4, 8, 16, 0, 32, 0, 0, 0, 0, 64, 0, 128, 0];

/// Where a window's scan looks for the next byte of a set; chosen once per window.
#[derive(Clone, Copy)]
pub(crate) struct Finder {
    set: &'static ByteSet,
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
}

impl Finder {
    pub fn new(set: &'static ByteSet) -> Finder {
        Finder {
            set,
            #[cfg(target_arch = "x86_64")]
            avx2: std::is_x86_feature_detected!("avx2"),
        }
    }

    /// The position of the first member of the set in `hay` at or after `from`, or `hay.len()`.
    #[inline]
    pub fn next(self, hay: &[u8], from: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU was checked for AVX2 when this finder was made.
            return unsafe { next_avx2(self.set, hay, from) };
        }
        next_scalar(self.set, hay, from)
    }
}

fn next_scalar(set: &ByteSet, hay: &[u8], from: usize) -> usize {
    let mut i = from.min(hay.len());
    while i < hay.len() && !set.member[hay[i] as usize] {
        i += 1;
    }
    i
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn next_avx2(set: &ByteSet, hay: &[u8], from: usize) -> usize {
    use std::arch::x86_64::*;
    let table = |t: &[u8; 16]| {
        let mut both = [0u8; 32];
        both[..16].copy_from_slice(t);
        both[16..].copy_from_slice(t);
        // SAFETY: `both` is 32 readable bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(both.as_ptr().cast()) }
    };
    let low_table = table(&set.low);
    let high_table = table(&HIGH);
    let nibble = _mm256_set1_epi8(0x0F);
    let zero = _mm256_setzero_si256();
    let mut i = from;
    while i + 32 <= hay.len() {
        // SAFETY: `i + 32 <= hay.len()`, so the 32 bytes read are inside `hay`.
        let v = unsafe { _mm256_loadu_si256(hay.as_ptr().add(i).cast()) };
        let low = _mm256_shuffle_epi8(low_table, _mm256_and_si256(v, nibble));
        let high = _mm256_shuffle_epi8(
            high_table,
            _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble),
        );
        let ordinary = _mm256_cmpeq_epi8(_mm256_and_si256(low, high), zero);
        let special = !(_mm256_movemask_epi8(ordinary) as u32);
        if special != 0 {
            return i + special.trailing_zeros() as usize;
        }
        i += 32;
    }
    next_scalar(set, hay, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_value_is_found_exactly_when_a_member() {
        for set in [&EVERY, &FEATURES] {
            let finder = Finder::new(set);
            for b in 0..=255u8 {
                // The byte at each offset of a block and past the block edge, in ordinary text.
                for at in [0usize, 5, 31, 32, 33, 63, 70] {
                    let mut hay = vec![b'a'; 80];
                    hay[at] = b;
                    let want = if set.member[b as usize] {
                        at
                    } else {
                        hay.len()
                    };
                    assert_eq!(finder.next(&hay, 0), want, "byte {b:#04x} at {at}");
                    assert_eq!(
                        next_scalar(set, &hay, 0),
                        want,
                        "scalar: byte {b:#04x} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn finds_from_the_given_offset_and_stops_at_the_end() {
        let finder = Finder::new(&EVERY);
        let hay =
            b"<p>some text here that runs on for a while 2019 and @ more text to pass the block";
        let mut found = Vec::new();
        let mut i = 0;
        loop {
            i = finder.next(hay, i);
            if i >= hay.len() {
                break;
            }
            found.push(i);
            i += 1;
        }
        let want: Vec<usize> = (0..hay.len())
            .filter(|&k| EVERY.member[hay[k] as usize])
            .collect();
        assert_eq!(found, want);
        assert_eq!(finder.next(hay, hay.len()), hay.len());
        assert_eq!(finder.next(b"", 0), 0);
    }
}
