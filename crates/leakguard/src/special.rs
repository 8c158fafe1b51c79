//! Finding the next byte where an identifier or a structure event can start.
//!
//! Almost every byte of a page is ordinary text, and the scanner's cost on a clean page was
//! mostly the loop that steps over it. On x86-64 with AVX2 this looks at 32 bytes per step with
//! the nibble-table test: a byte is special when the table entry of its low nibble and the one of
//! its high nibble share a bit. The special set has exactly eight distinct high nibbles, so one
//! bit per high nibble makes the test exact, not a superset. Elsewhere, and for the last bytes of
//! a window, a 256-entry table is read per byte.

/// Whether each byte can start something; the same set as the scanner's byte classes (checked
/// by a test).
pub(crate) static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = true;
        d += 1;
    }
    let others = [b'@', b'<', b'{', b'}', b'[', b']', b'\n', b'$', 0xC2, 0xE2];
    let mut k = 0;
    while k < others.len() {
        t[others[k] as usize] = true;
        k += 1;
    }
    t
};

/// Where a window's scan looks for the next special byte; chosen once per window.
#[derive(Clone, Copy)]
pub(crate) struct Finder {
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
}

impl Finder {
    pub fn new() -> Finder {
        Finder {
            #[cfg(target_arch = "x86_64")]
            avx2: std::is_x86_feature_detected!("avx2"),
        }
    }

    /// The position of the first special byte of `hay` at or after `from`, or `hay.len()`.
    #[inline]
    pub fn next(self, hay: &[u8], from: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU was checked for AVX2 when this finder was made.
            return unsafe { next_avx2(hay, from) };
        }
        next_scalar(hay, from)
    }
}

fn next_scalar(hay: &[u8], from: usize) -> usize {
    let mut i = from.min(hay.len());
    while i < hay.len() && !SPECIAL[hay[i] as usize] {
        i += 1;
    }
    i
}

/// Bit per high nibble of the special set: 0x0 `\n`, 0x2 `$`, 0x3 digits and `<`, 0x4 `@`,
/// 0x5 `[` `]`, 0x7 `{` `}`, 0xC and 0xE the lead bytes of `£` and `€`.
#[cfg(target_arch = "x86_64")]
const HIGH: [u8; 16] = [1, 0, 2, 4, 8, 16, 0, 32, 0, 0, 0, 0, 64, 0, 128, 0];

/// For each low nibble, the bits of the high nibbles that make a special byte with it.
#[cfg(target_arch = "x86_64")]
const LOW: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut b = 0usize;
    while b < 256 {
        if SPECIAL[b] {
            t[b & 15] |= HIGH[b >> 4];
        }
        b += 1;
    }
    t
};

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn next_avx2(hay: &[u8], from: usize) -> usize {
    use std::arch::x86_64::*;
    let table = |t: [u8; 16]| {
        let mut both = [0u8; 32];
        both[..16].copy_from_slice(&t);
        both[16..].copy_from_slice(&t);
        // SAFETY: `both` is 32 readable bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(both.as_ptr().cast()) }
    };
    let low_table = table(LOW);
    let high_table = table(HIGH);
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
    next_scalar(hay, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_value_is_found_exactly_when_special() {
        let finder = Finder::new();
        for b in 0..=255u8 {
            // The byte at each offset of a block and past the block edge, among ordinary text.
            for at in [0usize, 5, 31, 32, 33, 63, 70] {
                let mut hay = vec![b'a'; 80];
                hay[at] = b;
                let want = if SPECIAL[b as usize] { at } else { hay.len() };
                assert_eq!(finder.next(&hay, 0), want, "byte {b:#04x} at {at}");
                assert_eq!(next_scalar(&hay, 0), want, "scalar: byte {b:#04x} at {at}");
            }
        }
    }

    #[test]
    fn finds_from_the_given_offset_and_stops_at_the_end() {
        let finder = Finder::new();
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
            .filter(|&k| SPECIAL[hay[k] as usize])
            .collect();
        assert_eq!(found, want);
        assert_eq!(finder.next(hay, hay.len()), hay.len());
        assert_eq!(finder.next(b"", 0), 0);
    }
}
