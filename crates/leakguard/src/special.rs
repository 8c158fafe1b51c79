//! Finding the next byte where an identifier or a structure event can start.
//!
//! Almost every byte of a page is ordinary text, and the scanner's cost on a clean page was
//! mostly the loop that steps over it. On x86-64 with AVX2 this looks at 32 bytes per step with
//! the nibble-table test: a byte is in a set when the table entry of its low nibble and the one
//! of its high nibble share a bit. Each set here has at most eight distinct high nibbles, so one
//! bit per high nibble makes the test exact, not a superset. Elsewhere, and for the last bytes of
//! a window, tables of 256 entries are read per byte.
//!
//! A digit glued inside a word (`<h2>`, `utf8"`, `md5(`) is not a stop, although digits are
//! members of both sets: a lowercase letter before it and, after it, a byte that neither carries
//! a number on (a digit or a separator) nor starts a postcode's letters (an uppercase letter).
//! Nor are the digits of a quiet number: one to three of them, then a byte that neither carries
//! a number on nor starts a postcode's letters, with no colon just before (`update 12</h2>`,
//! `7pm`, `42rem`). The scan would read either as a short run with no identifier's shape and do
//! nothing with it, so skipping them changes no result (a scan test holds it to that); it only
//! spares stops, and stops are what a clean page's scan costs: each is a branch the CPU could
//! not predict, and the headings and small numbers of an ordinary page are most of its digits.

/// A set of bytes, with the nibble tables of the vector test.
pub(crate) struct ByteSet {
    pub member: [bool; 256],
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    /// Both tables twice over, one copy per 128-bit lane: for each low nibble the bits of the
    /// high nibbles that make a member with it, then each high nibble's own bit.
    low: [u8; 32],
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    high: [u8; 32],
}

const fn byte_set(digits: bool, uppercase: bool, others: &[u8]) -> ByteSet {
    let mut member = [false; 256];
    let mut b = 0usize;
    while b < 256 {
        member[b] =
            (digits && (b as u8).is_ascii_digit()) || (uppercase && (b as u8).is_ascii_uppercase());
        b += 1;
    }
    let mut k = 0;
    while k < others.len() {
        member[others[k] as usize] = true;
        k += 1;
    }
    // One bit per high nibble that has members, in order; a ninth would need another table.
    let mut high = [0u8; 32];
    let mut next_bit = 0u32;
    let mut low = [0u8; 32];
    b = 0;
    while b < 256 {
        if member[b] {
            let h = b >> 4;
            if high[h] == 0 {
                assert!(next_bit < 8);
                high[h] = 1 << next_bit;
                high[h + 16] = 1 << next_bit;
                next_bit += 1;
            }
            low[b & 15] |= high[h];
            low[(b & 15) + 16] |= high[h];
        }
        b += 1;
    }
    ByteSet { member, low, high }
}

/// Every byte where something can start: identifiers (digits, `@`, the currency signs' lead
/// bytes) and structure (`<`, brackets, newlines). The same set as the scanner's byte classes
/// (checked by a test).
pub(crate) static EVERY: ByteSet = byte_set(
    true,
    false,
    &[b'@', b'<', b'{', b'}', b'[', b']', b'\n', b'$', 0xC2, 0xE2],
);

/// Only where identifiers and record features can start: what a scan without the structure
/// looks at.
pub(crate) static FEATURES: ByteSet = byte_set(true, false, &[b'@', b'$', 0xC2, 0xE2]);

/// What may follow a digit for the run to go on or to matter: digits, the separators a run
/// joins over, and uppercase letters (`1AA`, a postcode's inward code).
static CONTINUES: ByteSet = byte_set(true, true, b" ,-./");

/// Whether the digit at `hay[i]` sits glued inside a word, so that no identifier starts there.
#[inline]
pub(crate) fn glued(hay: &[u8], i: usize) -> bool {
    i > 0
        && hay[i - 1].is_ascii_lowercase()
        && hay
            .get(i + 1)
            .is_some_and(|b| !CONTINUES.member[*b as usize])
}

/// Whether the digit at `hay[i]` belongs to a quiet number: one to three digits, then a byte
/// that neither carries a number on nor starts a postcode's letters, and no colon in the four
/// bytes before (where a JSON value's key would end). `update 12</h2>`, `7pm`, `42rem`.
#[inline]
pub(crate) fn quiet(hay: &[u8], i: usize) -> bool {
    let digit = |k: usize| hay[k].is_ascii_digit();
    if !digit(i) {
        return false;
    }
    let mut start = i;
    while start > 0 && digit(start - 1) && i - start < 3 {
        start -= 1;
    }
    let mut last = i;
    while last + 1 < hay.len() && digit(last + 1) && last - start < 3 {
        last += 1;
    }
    let whole = !(start > 0 && digit(start - 1));
    let after = hay.get(last + 1).copied();
    whole
        && last - start < 3
        && after.is_some_and(|b| !CONTINUES.member[b as usize])
        && !hay[start.saturating_sub(4)..start].contains(&b':')
}

/// Whether the scan stops at `hay[i]`: a member of the set, except a digit glued inside a word
/// or in a quiet number.
#[inline]
fn stops(set: &ByteSet, hay: &[u8], i: usize) -> bool {
    let b = hay[i];
    set.member[b as usize] && !(b.is_ascii_digit() && (glued(hay, i) || quiet(hay, i)))
}

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

    /// The position of the first stop in `hay` at or after `from`, or `hay.len()`: a member of
    /// the set that is not a digit glued inside a word.
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
    while i < hay.len() && !stops(set, hay, i) {
        i += 1;
    }
    i
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn next_avx2(set: &ByteSet, hay: &[u8], from: usize) -> usize {
    use std::arch::x86_64::*;
    // SAFETY (all loads below): each reads 32 bytes from a 32-byte table or from `hay` at an
    // offset checked to leave 32 readable bytes; the loads are unaligned.
    let members = |v: __m256i, set: &ByteSet| -> u32 {
        let nibble = _mm256_set1_epi8(0x0F);
        let low_table = unsafe { _mm256_loadu_si256(set.low.as_ptr().cast()) };
        let high_table = unsafe { _mm256_loadu_si256(set.high.as_ptr().cast()) };
        let low = _mm256_shuffle_epi8(low_table, _mm256_and_si256(v, nibble));
        let high = _mm256_shuffle_epi8(
            high_table,
            _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble),
        );
        let outside = _mm256_cmpeq_epi8(_mm256_and_si256(low, high), _mm256_setzero_si256());
        !(_mm256_movemask_epi8(outside) as u32)
    };
    // Bytes in `first..=last` (both below 0x80, so the signed comparisons are exact).
    let within = |v: __m256i, first: u8, last: u8| -> u32 {
        let above = _mm256_cmpgt_epi8(v, _mm256_set1_epi8(first as i8 - 1));
        let below = _mm256_cmpgt_epi8(_mm256_set1_epi8(last as i8 + 1), v);
        _mm256_movemask_epi8(_mm256_and_si256(above, below)) as u32
    };
    let colons = |v: __m256i| -> u32 {
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(b':' as i8))) as u32
    };
    // The tests of a block's digits read from 8 bytes before it to 24 after it, so the first 8
    // bytes of a window are tested one at a time, and the last ones in a padded copy.
    let mut i = from;
    while i < 8 && i < hay.len() {
        if stops(set, hay, i) {
            return i;
        }
        i += 1;
    }
    // The block test, for `hay[i..i + 32]` with `i >= 8` and `i + 56 <= hay.len()`: the bits of
    // its stops.
    let block = |hay: &[u8], i: usize| -> u32 {
        let v = unsafe { _mm256_loadu_si256(hay.as_ptr().add(i).cast()) };
        let mut special = members(v, set);
        if special != 0 {
            let digits = special & within(v, b'0', b'9');
            if digits != 0 {
                let before = unsafe { _mm256_loadu_si256(hay.as_ptr().add(i - 1).cast()) };
                let after = unsafe { _mm256_loadu_si256(hay.as_ptr().add(i + 1).cast()) };
                let glued = within(before, b'a', b'z') & !members(after, &CONTINUES);
                special &= !(digits & glued);
                if digits & !glued != 0 {
                    // Bit b of these stands for byte i - 8 + b.
                    let (low, high) = unsafe {
                        (
                            _mm256_loadu_si256(hay.as_ptr().add(i - 8).cast()),
                            _mm256_loadu_si256(hay.as_ptr().add(i + 24).cast()),
                        )
                    };
                    let wide = |l: u32, h: u32| u64::from(l) | u64::from(h) << 32;
                    let m = wide(within(low, b'0', b'9'), within(high, b'0', b'9'));
                    let carries = wide(members(low, &CONTINUES), members(high, &CONTINUES));
                    let colon = wide(colons(low), colons(high));
                    let starts = m & !(m << 1);
                    let quiet_end = m & !(carries >> 1);
                    let no_key = !((colon << 1) | (colon << 2) | (colon << 3) | (colon << 4));
                    let quiet_starts = starts
                        & no_key
                        & (quiet_end
                            | (m >> 1) & (quiet_end >> 1)
                            | (m >> 1) & (m >> 2) & (quiet_end >> 2));
                    let quiet =
                        quiet_starts | (quiet_starts << 1) & m | (quiet_starts << 2) & m & (m << 1);
                    special &= !(digits & (quiet >> 8) as u32);
                }
            }
        }
        special
    };
    while i + 56 <= hay.len() {
        let special = block(hay, i);
        if special != 0 {
            return i + special.trailing_zeros() as usize;
        }
        i += 32;
    }
    if i >= hay.len() {
        return hay.len();
    }
    // The last bytes (fewer than 56), tested in a copy padded with digits: a digit carries a
    // number on, so a real digit before the padding is neither glued nor quiet, as at the true
    // end; a stop found in the padding means none in the bytes.
    let mut padded = [b'0'; 128];
    let rest = hay.len() - i;
    padded[..8 + rest].copy_from_slice(&hay[i - 8..]);
    let mut j = 8;
    while j < 8 + rest {
        let special = block(&padded, j);
        if special != 0 {
            return (i + j - 8 + special.trailing_zeros() as usize).min(hay.len());
        }
        j += 32;
    }
    hay.len()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn every_byte_value_is_found_exactly_when_a_member() {
        for set in [&EVERY, &FEATURES] {
            let finder = Finder::new(set);
            for b in 0..=255u8 {
                // The byte at each offset of a block and past the block edge, in ordinary text.
                for at in [0usize, 5, 31, 32, 33, 63, 64, 65, 70, 97, 128, 140] {
                    let mut hay = vec![b' '; 150];
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

    /// A deterministic stream of bytes drawn from text that exercises the glued test: letters
    /// of both cases, digits, separators and markup.
    pub(crate) fn sample_text(seed: u64, len: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ahz AZ09 5 -./,<>\"@$\n{}[]\xc2\xa3h2utf8:12 345:\"7";
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ALPHABET[(state % ALPHABET.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn digits_glued_inside_words_are_not_stops() {
        let finder = Finder::new(&FEATURES);
        let stops_in = |text: &[u8]| -> Vec<usize> {
            let mut found = Vec::new();
            let mut i = 0;
            while i < text.len() {
                i = finder.next(text, i);
                if i < text.len() {
                    found.push(i);
                    i += 1;
                }
            }
            found
        };
        // Heading tags and identifiers: no stop.
        assert_eq!(
            stops_in(b"<h2>Campaign</h2> utf8\" md5( x2y"),
            Vec::<usize>::new()
        );
        // Digits that start or carry on a number, or a postcode's inward code, stay stops.
        assert_eq!(stops_in(b"SW1A 1AA"), vec![2, 5]);
        assert_eq!(
            stops_in(b"v1.2 ab12 call07700"),
            vec![1, 3, 7, 8, 14, 15, 16, 17, 18]
        );
        assert_eq!(stops_in(b"2 h2"), vec![0, 3]);
    }

    #[test]
    fn the_last_bytes_are_tested_as_the_byte_search_does() {
        // Endings whose digits a byte after them would make glued or quiet: at the true end
        // they stay stops. Each lands at every offset of the last, padded blocks.
        let endings: [&[u8]; 8] = [b"ab1", b"x 12", b"12", b"a1", b": 5", b"h2", b"7pm 3", b"@"];
        for set in [&EVERY, &FEATURES] {
            let finder = Finder::new(set);
            for ending in endings {
                for len in ending.len()..160 {
                    let mut text = sample_text(len as u64, len - ending.len());
                    text.retain(|b| !set.member[*b as usize]);
                    text.resize(len - ending.len(), b'x');
                    text.extend_from_slice(ending);
                    for from in 0..=text.len() {
                        let want = next_scalar(set, &text, from);
                        let ending = String::from_utf8_lossy(ending);
                        assert_eq!(
                            finder.next(&text, from),
                            want,
                            "{ending:?} at {len} from {from}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_vector_and_byte_searches_agree() {
        for seed in 1..200u64 {
            let text = sample_text(seed, 1 + (seed as usize * 37) % 300);
            for set in [&EVERY, &FEATURES] {
                let finder = Finder::new(set);
                for from in 0..=text.len() {
                    let want = next_scalar(set, &text, from);
                    assert_eq!(finder.next(&text, from), want, "seed {seed} from {from}");
                    let first = (from..text.len()).find(|&k| stops(set, &text, k));
                    assert_eq!(want, first.unwrap_or(text.len()), "seed {seed} from {from}");
                }
            }
        }
    }
}
