//! Round trips through real encoders, fed whole, byte by byte and in odd chunk sizes, plus bombs.

use std::io::Write;

use rampart_decode::{DecodeErrorKind, Decoder, Encoding};

fn sample_body() -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..2000 {
        writeln!(body, "<tr><td>Donor {i}</td><td>£{}.00</td></tr>", i % 97).unwrap();
    }
    body
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

/// A zstd frame made of raw blocks, built by hand so the tests need no zstd encoder. Frame header:
/// magic, descriptor with single-segment and a 4-byte content size, then raw blocks.
fn zstd_raw_frame(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame_Header_Descriptor: FCS flag 2 (4 bytes), single segment 1.
    out.push(0b1010_0000);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    let blocks: Vec<&[u8]> = data.chunks(100_000).collect();
    for (i, block) in blocks.iter().enumerate() {
        let last = u32::from(i + 1 == blocks.len());
        let header = last | ((block.len() as u32) << 3); // block type 0 = raw
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(block);
    }
    out
}

/// A zstd frame of RLE blocks: each block is 4 bytes on the wire and 128 KiB decoded.
fn zstd_rle_bomb(blocks: usize) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    // No content size, window descriptor present: window 8 MiB (exponent 13 => 2^23).
    out.push(0b0000_0000);
    out.push(13 << 3);
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = last | (1 << 1) | ((128 * 1024) << 3); // block type 1 = RLE
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(b'A');
    }
    out
}

fn decode_in_chunks(
    encoding: &str,
    body: &[u8],
    chunk: usize,
    cap: usize,
) -> Result<Vec<u8>, DecodeErrorKind> {
    let mut decoder = Decoder::new(encoding, cap).unwrap();
    let mut out = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        decoder
            .push(piece, &mut out)
            .map_err(|e| e.kind().clone())?;
    }
    decoder.finish(&mut out).map_err(|e| e.kind().clone())?;
    Ok(out)
}

fn check_round_trip(encoding: &str, compressed: &[u8], plain: &[u8]) {
    for chunk in [1, 2, 3, 7, 1000, 4096, usize::MAX] {
        let chunk = chunk.min(compressed.len().max(1));
        let out = decode_in_chunks(encoding, compressed, chunk, 10 << 20)
            .unwrap_or_else(|e| panic!("{encoding} chunk {chunk}: {e:?}"));
        assert!(out == plain, "{encoding} chunk {chunk}: output differs");
    }
}

#[test]
fn gzip_round_trips_in_any_chunking() {
    let body = sample_body();
    check_round_trip("gzip", &gzip(&body), &body);
    check_round_trip("X-GZIP", &gzip(&body), &body);
}

#[test]
fn gzip_with_two_members_yields_both() {
    let mut two = gzip(b"first ");
    two.extend(gzip(b"second"));
    assert_eq!(
        decode_in_chunks("gzip", &two, 1, 1000).unwrap(),
        b"first second"
    );
}

#[test]
fn deflate_accepts_zlib_and_raw() {
    let body = sample_body();
    check_round_trip("deflate", &zlib(&body), &body);
    check_round_trip("deflate", &raw_deflate(&body), &body);
}

#[test]
fn brotli_round_trips_in_any_chunking() {
    let body = sample_body();
    check_round_trip("br", &brotli(&body), &body);
}

#[test]
fn zstd_round_trips_in_any_chunking() {
    let body = sample_body();
    check_round_trip("zstd", &zstd_raw_frame(&body), &body);
}

#[test]
fn identity_passes_bytes_through() {
    check_round_trip("identity", b"plain text", b"plain text");
}

#[test]
fn unknown_encoding_is_an_error() {
    let err = Decoder::new("compress", 10).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::UnknownEncoding);
    assert!(
        Decoder::new("gzip, br", 10).is_err(),
        "a list is for LayeredDecoder"
    );
    assert_eq!(Encoding::parse(" Br "), Some(Encoding::Brotli));
}

/// A few hundred kilobytes of gzip that inflate to 1 GiB must stop at the cap, whatever the
/// chunking. The bomb is one 1 MiB member of zeros repeated: gzip allows concatenated members,
/// and building it this way keeps the test fast.
#[test]
fn gzip_bomb_hits_the_cap() {
    let member = gzip(&vec![0u8; 1 << 20]);
    let bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 1024)
        .collect();
    assert!(bomb.len() < 2 << 20, "bomb is {} bytes", bomb.len());
    for chunk in [1, 4096, bomb.len()] {
        let mut decoder = Decoder::new("gzip", 1 << 20).unwrap();
        let mut out = Vec::new();
        let mut err = None;
        for piece in bomb.chunks(chunk) {
            if let Err(e) = decoder.push(piece, &mut out) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("the bomb must be refused");
        assert_eq!(err.kind(), &DecodeErrorKind::OutputLimit);
        assert!(out.len() <= 1 << 20);
        assert!(out.capacity() <= 4 << 20, "capacity {}", out.capacity());
    }
}

#[test]
fn brotli_bomb_hits_the_cap() {
    let zeros = vec![0u8; 16 << 20];
    let bomb = brotli(&zeros);
    let result = decode_in_chunks("br", &bomb, 512, 1 << 20);
    assert_eq!(result.unwrap_err(), DecodeErrorKind::OutputLimit);
}

#[test]
fn deflate_bomb_hits_the_cap() {
    let zeros = vec![0u8; 16 << 20];
    let result = decode_in_chunks("deflate", &zlib(&zeros), 100, 1 << 20);
    assert_eq!(result.unwrap_err(), DecodeErrorKind::OutputLimit);
}

#[test]
fn zstd_rle_bomb_hits_the_cap() {
    // 8192 blocks of 128 KiB: 1 GiB from 32 KiB of input.
    let bomb = zstd_rle_bomb(8192);
    for chunk in [1, 4096, bomb.len()] {
        let result = decode_in_chunks("zstd", &bomb, chunk, 1 << 20);
        assert_eq!(
            result.unwrap_err(),
            DecodeErrorKind::OutputLimit,
            "chunk {chunk}"
        );
    }
    // And a small RLE frame inside the cap decodes.
    let small = decode_in_chunks("zstd", &zstd_rle_bomb(2), 3, 1 << 20).unwrap();
    assert_eq!(small.len(), 256 * 1024);
    assert!(small.iter().all(|&b| b == b'A'));
}

#[test]
fn truncated_streams_are_reported() {
    let body = sample_body();
    let gz = gzip(&body);
    let result = decode_in_chunks("gzip", &gz[..gz.len() / 2], 100, 10 << 20);
    assert!(
        matches!(
            result,
            Err(DecodeErrorKind::Truncated) | Err(DecodeErrorKind::Corrupt)
        ),
        "{result:?}"
    );
    let z = zstd_raw_frame(&body);
    let result = decode_in_chunks("zstd", &z[..z.len() - 10], 100, 10 << 20);
    assert_eq!(result.unwrap_err(), DecodeErrorKind::Truncated);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for enc in ["gzip", "deflate", "br", "zstd"] {
        assert!(
            decode_in_chunks(enc, &garbage, 37, 1 << 20).is_err(),
            "{enc}"
        );
    }
}

#[test]
fn push_after_finish_is_refused() {
    let mut d = Decoder::new("identity", 10).unwrap();
    let mut out = Vec::new();
    d.finish(&mut out).unwrap();
    assert_eq!(
        d.push(b"x", &mut out).unwrap_err().kind(),
        &DecodeErrorKind::Finished
    );
}

#[test]
fn layered_codings_are_undone_last_first() {
    let body = sample_body();
    let stacked = brotli(&gzip(&body));
    for chunk in [1, 100, usize::MAX] {
        let mut decoder =
            rampart_decode::LayeredDecoder::new("gzip, identity, br", 10 << 20).unwrap();
        let mut out = Vec::new();
        for piece in stacked.chunks(chunk.min(stacked.len())) {
            decoder.push(piece, &mut out).unwrap();
        }
        decoder.finish(&mut out).unwrap();
        assert!(out == body, "chunk {chunk}");
    }
    let mut plain = rampart_decode::LayeredDecoder::new("", 100).unwrap();
    let mut out = Vec::new();
    plain.push(b"as is", &mut out).unwrap();
    plain.finish(&mut out).unwrap();
    assert_eq!(out, b"as is");
    let err = rampart_decode::LayeredDecoder::new("gzip, gzip, gzip, gzip", 100).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::TooManyCodings);
    assert!(rampart_decode::LayeredDecoder::new("gzip, compress", 100).is_err());
}

/// Valid streams with bytes flipped, dropped or cut: every outcome is a value or an error,
/// never a panic or a hang, and output stays under the cap.
#[test]
fn mutated_streams_never_panic() {
    let body = sample_body();
    let streams = [
        ("gzip", gzip(&body)),
        ("deflate", zlib(&body)),
        ("deflate", raw_deflate(&body)),
        ("br", brotli(&body)),
        ("zstd", zstd_raw_frame(&body[..5000])),
        ("zstd", zstd_rle_bomb(3)),
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (encoding, stream) in &streams {
        for _ in 0..300 {
            let mut mutated = stream.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() % mutated.len() as u64) as usize;
                match next() % 3 {
                    0 => mutated[at] ^= 1 << (next() % 8),
                    1 => mutated[at] = next() as u8,
                    _ => mutated.truncate(at.max(1)),
                }
            }
            let cap = 64 * 1024;
            let chunk = (next() % 700 + 1) as usize;
            if let Ok(out) = decode_in_chunks(encoding, &mutated, chunk, cap) {
                assert!(out.len() <= cap);
            }
        }
    }
}
