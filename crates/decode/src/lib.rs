//! Streaming, bounded decoders for HTTP `Content-Encoding`.
//!
//! Response inspection (the WAF's response-body phase and the leak guard) must look at what the
//! client will read, which is the *decoded* body. An upstream that compresses its responses would
//! otherwise hide everything from both layers. The decoders here take the body chunk by chunk,
//! exactly as the proxy receives it, and never hold more than a bounded amount of output: a
//! decompression bomb (a few kilobytes that inflate to gigabytes) hits `max_output` and returns
//! [`DecodeErrorKind::OutputLimit`] instead of exhausting memory.
//!
//! ```
//! use rampart_decode::Decoder;
//!
//! let mut decoder = Decoder::new("identity", 1024).unwrap();
//! let mut out = Vec::new();
//! decoder.push(b"hello", &mut out).unwrap();
//! decoder.finish(&mut out).unwrap();
//! assert_eq!(out, b"hello");
//! ```
//!
//! This crate does no I/O: it takes bytes and gives bytes.

use std::fmt;
use std::io::Write;

/// The largest zstd window a decoder accepts. RFC 9659 asks HTTP zstd decoders to support
/// windows up to 8 MiB and allows them to refuse larger ones; the window is memory the decoder
/// must keep, so accepting more would let one response pin more memory than the output cap.
pub const ZSTD_MAX_WINDOW: u64 = 8 * 1024 * 1024;

/// How much compressed zstd input may wait for a whole block. A zstd block is at most 128 KiB
/// of content plus a 3-byte header, and a frame header is at most 18 bytes.
const ZSTD_MAX_PENDING: usize = 128 * 1024 + 3 + 18 + 64;

/// The most codings a `Content-Encoding` list may stack. Real servers apply one; two happen
/// (`gzip, br` through a misconfigured proxy); more is an attack on the decoder's memory.
pub const MAX_CODINGS: usize = 3;

/// How many bytes of output each zstd drain step asks for.
const ZSTD_DRAIN_STEP: usize = 32 * 1024;

/// Why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The `Content-Encoding` token names no coding this crate decodes.
    UnknownEncoding,
    /// The decoded output would exceed the cap given to [`Decoder::new`]; the body is probably a
    /// decompression bomb, or simply larger than inspection allows.
    OutputLimit,
    /// The compressed input is malformed.
    Corrupt,
    /// The body ended in the middle of a compressed stream.
    Truncated,
    /// Input arrived after the stream had been finished, or `push` was called after an error.
    Finished,
    /// A `Content-Encoding` list names more codings than [`MAX_CODINGS`].
    TooManyCodings,
}

/// An error from a [`Decoder`], with the encoding it happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    encoding: Encoding,
    detail: String,
}

impl DecodeError {
    fn new(kind: DecodeErrorKind, encoding: Encoding, detail: impl Into<String>) -> DecodeError {
        DecodeError {
            kind,
            encoding,
            detail: detail.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// The coding that was being decoded.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            DecodeErrorKind::UnknownEncoding => "unknown content encoding",
            DecodeErrorKind::OutputLimit => "decoded body exceeds the output limit",
            DecodeErrorKind::Corrupt => "corrupt compressed body",
            DecodeErrorKind::Truncated => "compressed body ends early",
            DecodeErrorKind::Finished => "decoder already finished",
            DecodeErrorKind::TooManyCodings => "too many content codings",
        };
        write!(f, "{} ({}): {}", what, self.encoding.name(), self.detail)
    }
}

impl std::error::Error for DecodeError {}

/// A `Content-Encoding` this crate can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// No coding: bytes pass through, still under the output cap.
    Identity,
    /// `gzip` or `x-gzip`, including several concatenated members.
    Gzip,
    /// `deflate`: RFC 9110 says zlib-wrapped, but many servers send raw deflate, so the first
    /// bytes decide.
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl Encoding {
    /// Parses one `Content-Encoding` token, ignoring case and surrounding spaces. A list of
    /// codings (`gzip, br`) is not one token: stack decoders for that.
    pub fn parse(token: &str) -> Option<Encoding> {
        let token = token.trim();
        let pick = |name: &str| token.eq_ignore_ascii_case(name);
        if pick("identity") || token.is_empty() {
            Some(Encoding::Identity)
        } else if pick("gzip") || pick("x-gzip") {
            Some(Encoding::Gzip)
        } else if pick("deflate") {
            Some(Encoding::Deflate)
        } else if pick("br") {
            Some(Encoding::Brotli)
        } else if pick("zstd") {
            Some(Encoding::Zstd)
        } else {
            None
        }
    }

    /// The token as it appears in a header.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
        }
    }
}

/// The write end the stream decoders write into. It is the caller's output buffer, swapped in for
/// the duration of one call, so decoded bytes are written once, straight where the caller wants
/// them. It refuses to grow past the remaining budget, which is what stops a bomb.
#[derive(Default)]
struct Sink {
    buf: Vec<u8>,
    remaining: usize,
    over: bool,
}

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if bytes.len() > self.remaining {
            self.over = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.remaining -= bytes.len();
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Stream {
    Identity,
    Gzip(Box<flate2::write::MultiGzDecoder<Sink>>),
    /// `deflate` before its first two bytes have arrived: they tell zlib from raw.
    DeflateUndecided {
        head: [u8; 2],
        len: usize,
    },
    Zlib(Box<flate2::write::ZlibDecoder<Sink>>),
    RawDeflate(Box<flate2::write::DeflateDecoder<Sink>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Sink>>),
    Zstd(Box<ZstdStream>),
}

struct ZstdStream {
    frame: ruzstd::decoding::FrameDecoder,
    /// Compressed bytes waiting for a whole block; capped at [`ZSTD_MAX_PENDING`].
    pending: Vec<u8>,
    /// Whether a frame has been started and not yet fully drained.
    in_frame: bool,
}

/// A streaming decoder for one response body.
///
/// Call [`push`](Decoder::push) for each chunk as it arrives and [`finish`](Decoder::finish) at
/// the end of the body. Decoded bytes are appended to the caller's buffer; the total is capped at
/// `max_output` for the whole body.
pub struct Decoder {
    encoding: Encoding,
    stream: Stream,
    max_output: usize,
    produced: usize,
    done: bool,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("encoding", &self.encoding)
            .field("max_output", &self.max_output)
            .field("produced", &self.produced)
            .field("done", &self.done)
            .finish()
    }
}

impl Decoder {
    /// Makes a decoder for one `Content-Encoding` token. An unknown token is an error, so the
    /// caller can decide what to do with a body it cannot inspect (pass it, or refuse it).
    pub fn new(encoding: &str, max_output: usize) -> Result<Decoder, DecodeError> {
        let parsed = Encoding::parse(encoding).ok_or_else(|| {
            DecodeError::new(
                DecodeErrorKind::UnknownEncoding,
                Encoding::Identity,
                format!("{encoding:?}"),
            )
        })?;
        Ok(Decoder::with_encoding(parsed, max_output))
    }

    /// Makes a decoder for an already parsed encoding.
    pub fn with_encoding(encoding: Encoding, max_output: usize) -> Decoder {
        let stream = match encoding {
            Encoding::Identity => Stream::Identity,
            Encoding::Gzip => Stream::Gzip(Box::new(flate2::write::MultiGzDecoder::new(
                Sink::default(),
            ))),
            Encoding::Deflate => Stream::DeflateUndecided {
                head: [0; 2],
                len: 0,
            },
            // 4 KiB is the decompressor's internal output buffer, flushed to the sink as it fills.
            Encoding::Brotli => Stream::Brotli(Box::new(
                brotli_decompressor::DecompressorWriter::new(Sink::default(), 4096),
            )),
            Encoding::Zstd => {
                let mut frame = ruzstd::decoding::FrameDecoder::new();
                frame.set_max_window_size(ZSTD_MAX_WINDOW);
                Stream::Zstd(Box::new(ZstdStream {
                    frame,
                    pending: Vec::new(),
                    in_frame: false,
                }))
            }
        };
        Decoder {
            encoding,
            stream,
            max_output,
            produced: 0,
            done: false,
        }
    }

    /// The encoding this decoder undoes.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// How many decoded bytes have been produced so far.
    pub fn produced(&self) -> usize {
        self.produced
    }

    /// Decodes one chunk of the body, appending what it yields to `out`. Some output may be held
    /// inside the decoder until more input or [`finish`](Decoder::finish) arrives.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        if self.done {
            return Err(self.error(DecodeErrorKind::Finished, "push after finish or error"));
        }
        let result = self.push_inner(chunk, out, false);
        if result.is_err() {
            self.done = true;
        }
        result
    }

    /// Ends the body: flushes what the decoder still holds and checks that the compressed stream
    /// was complete.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        if self.done {
            return Err(self.error(DecodeErrorKind::Finished, "finish called twice"));
        }
        let result = self.push_inner(&[], out, true);
        self.done = true;
        result
    }

    fn error(&self, kind: DecodeErrorKind, detail: impl Into<String>) -> DecodeError {
        DecodeError::new(kind, self.encoding, detail)
    }

    fn push_inner(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<u8>,
        last: bool,
    ) -> Result<(), DecodeError> {
        let remaining = self.max_output - self.produced;
        let before = out.len();
        let result = match &mut self.stream {
            Stream::Identity => {
                if chunk.len() > remaining {
                    Err((DecodeErrorKind::OutputLimit, String::new()))
                } else {
                    out.extend_from_slice(chunk);
                    Ok(())
                }
            }
            Stream::DeflateUndecided { head, len } => {
                // Fill the two header bytes first; they are only peeked at, and replayed below.
                let take = (2 - *len).min(chunk.len());
                head[*len..*len + take].copy_from_slice(&chunk[..take]);
                *len += take;
                if *len < 2 && !last {
                    Ok(())
                } else {
                    let head_bytes = *head;
                    let head_len = *len;
                    self.stream = if head_len == 2 && is_zlib_header(head_bytes) {
                        Stream::Zlib(Box::new(flate2::write::ZlibDecoder::new(Sink::default())))
                    } else {
                        Stream::RawDeflate(Box::new(flate2::write::DeflateDecoder::new(
                            Sink::default(),
                        )))
                    };
                    // Replay the peeked bytes and the rest of this chunk. The recursion is one
                    // level deep: the stream is now decided.
                    self.push_inner(&head_bytes[..head_len], out, false)?;
                    return self.push_inner(&chunk[take..], out, last);
                }
            }
            Stream::Gzip(w) => drive(w.as_mut(), chunk, out, remaining, last, |w| w.try_finish()),
            Stream::Zlib(w) => drive(w.as_mut(), chunk, out, remaining, last, |w| w.try_finish()),
            Stream::RawDeflate(w) => {
                drive(w.as_mut(), chunk, out, remaining, last, |w| w.try_finish())
            }
            Stream::Brotli(w) => drive(w.as_mut(), chunk, out, remaining, last, |w| w.close()),
            Stream::Zstd(z) => z.push(chunk, out, remaining, last),
        };
        self.produced += out.len() - before;
        result.map_err(|(kind, detail)| self.error(kind, detail))
    }
}

/// A zlib stream starts with CMF/FLG: compression method 8 and a header checksum that makes the
/// pair a multiple of 31. Raw deflate data matches this by chance rarely enough.
fn is_zlib_header(head: [u8; 2]) -> bool {
    head[0] & 0x0f == 8
        && head[0] >> 4 <= 7
        && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0
}

/// The writers' common surface: access to the sink.
trait SinkWriter: Write {
    fn sink(&mut self) -> &mut Sink;
}

impl SinkWriter for flate2::write::MultiGzDecoder<Sink> {
    fn sink(&mut self) -> &mut Sink {
        self.get_mut()
    }
}
impl SinkWriter for flate2::write::ZlibDecoder<Sink> {
    fn sink(&mut self) -> &mut Sink {
        self.get_mut()
    }
}
impl SinkWriter for flate2::write::DeflateDecoder<Sink> {
    fn sink(&mut self) -> &mut Sink {
        self.get_mut()
    }
}
impl SinkWriter for brotli_decompressor::DecompressorWriter<Sink> {
    fn sink(&mut self) -> &mut Sink {
        self.get_mut()
    }
}

type StepResult = Result<(), (DecodeErrorKind, String)>;

/// Runs one chunk through a write-style decoder whose sink is, for the duration, the caller's
/// buffer.
fn drive<W: SinkWriter>(
    writer: &mut W,
    chunk: &[u8],
    out: &mut Vec<u8>,
    remaining: usize,
    last: bool,
    finish: impl FnOnce(&mut W) -> std::io::Result<()>,
) -> StepResult {
    {
        let sink = writer.sink();
        std::mem::swap(&mut sink.buf, out);
        sink.remaining = remaining;
        sink.over = false;
    }
    let mut result = writer.write_all(chunk).and_then(|()| writer.flush());
    if result.is_ok() && last {
        result = finish(writer);
    }
    let sink = writer.sink();
    std::mem::swap(&mut sink.buf, out);
    let over = sink.over;
    match result {
        Ok(()) => Ok(()),
        Err(_) if over => Err((DecodeErrorKind::OutputLimit, String::new())),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err((DecodeErrorKind::Truncated, e.to_string()))
        }
        Err(e) if last && e.kind() == std::io::ErrorKind::WriteZero => {
            Err((DecodeErrorKind::Truncated, e.to_string()))
        }
        Err(e) => Err((DecodeErrorKind::Corrupt, e.to_string())),
    }
}

impl ZstdStream {
    fn push(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<u8>,
        mut remaining: usize,
        last: bool,
    ) -> StepResult {
        let mut chunk = chunk;
        loop {
            // Top up the pending input from the chunk, within its cap.
            let room = ZSTD_MAX_PENDING - self.pending.len();
            let take = room.min(chunk.len());
            self.pending.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            let input_done = chunk.is_empty();

            let progressed = self.step(out, &mut remaining, last && input_done)?;
            if input_done && !progressed {
                break;
            }
            if !input_done && !progressed && self.pending.len() == ZSTD_MAX_PENDING {
                return Err((
                    DecodeErrorKind::Corrupt,
                    "zstd block larger than the format allows".to_string(),
                ));
            }
        }
        if last && (self.in_frame || !self.pending.is_empty()) {
            return Err((
                DecodeErrorKind::Truncated,
                "zstd frame incomplete".to_string(),
            ));
        }
        Ok(())
    }

    /// Decodes what the pending input allows and drains the output. Returns whether anything
    /// moved.
    fn step(
        &mut self,
        out: &mut Vec<u8>,
        remaining: &mut usize,
        last: bool,
    ) -> Result<bool, (DecodeErrorKind, String)> {
        let mut progressed = false;
        loop {
            if !self.in_frame {
                // A frame header is at most 18 bytes; wait for them unless the body is over.
                if self.pending.is_empty() || (self.pending.len() < 18 && !last) {
                    return Ok(progressed);
                }
                let mut source: &[u8] = &self.pending;
                let before = source.len();
                self.frame.reset(&mut source).map_err(|e| {
                    let kind = if last {
                        DecodeErrorKind::Truncated
                    } else {
                        DecodeErrorKind::Corrupt
                    };
                    (kind, e.to_string())
                })?;
                let used = before - source.len();
                self.pending.drain(..used);
                self.in_frame = true;
                progressed = true;
            }
            // The checksum branch inside ruzstd claims 4 bytes whether or not they are there, so
            // never call it with fewer than 4 bytes of input while the body goes on.
            if self.pending.len() < 4 && !last && !self.frame.is_finished() {
                return Ok(progressed);
            }
            let start = out.len();
            let want = ZSTD_DRAIN_STEP.min(remaining.saturating_add(1));
            out.resize(start + want, 0);
            let decoded = self.frame.decode_from_to(&self.pending, &mut out[start..]);
            let (read, written) = match decoded {
                Ok(pair) => pair,
                Err(e) => {
                    out.truncate(start);
                    return Err((DecodeErrorKind::Corrupt, e.to_string()));
                }
            };
            out.truncate(start + written);
            if written > *remaining {
                return Err((DecodeErrorKind::OutputLimit, String::new()));
            }
            *remaining -= written;
            let read = read.min(self.pending.len());
            self.pending.drain(..read);
            if read > 0 || written > 0 {
                progressed = true;
            }
            if self.frame.is_finished() && self.frame.can_collect() == 0 {
                // The frame is over; the next bytes, if any, start another frame.
                self.in_frame = false;
                continue;
            }
            if read == 0 && written == 0 {
                return Ok(progressed);
            }
        }
    }
}

/// Decoders for a whole `Content-Encoding` header value, such as `gzip, br`: the codings were
/// applied in the order listed, so they are undone from the last to the first. Identity tokens
/// are skipped. Each layer has the same output cap, and the intermediate buffers are reused.
#[derive(Debug)]
pub struct LayeredDecoder {
    /// Outermost coding first, i.e. in the order they are undone.
    layers: Vec<Decoder>,
    /// One reusable buffer between each pair of layers.
    between: Vec<Vec<u8>>,
}

impl LayeredDecoder {
    /// Parses a `Content-Encoding` value. An unknown token or more than [`MAX_CODINGS`] codings
    /// is an error.
    pub fn new(content_encoding: &str, max_output: usize) -> Result<LayeredDecoder, DecodeError> {
        let mut layers = Vec::new();
        for token in content_encoding.split(',') {
            let decoder = Decoder::new(token, max_output)?;
            if decoder.encoding() == Encoding::Identity {
                continue;
            }
            if layers.len() == MAX_CODINGS {
                return Err(DecodeError::new(
                    DecodeErrorKind::TooManyCodings,
                    decoder.encoding(),
                    format!("{content_encoding:?}"),
                ));
            }
            layers.push(decoder);
        }
        if layers.is_empty() {
            layers.push(Decoder::with_encoding(Encoding::Identity, max_output));
        }
        layers.reverse();
        let between = (1..layers.len()).map(|_| Vec::new()).collect();
        Ok(LayeredDecoder { layers, between })
    }

    /// Decodes one chunk through every layer, appending the result to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        self.run(chunk, out, false)
    }

    /// Ends the body in every layer, outermost first, appending what they still held.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        self.run(&[], out, true)
    }

    fn run(&mut self, chunk: &[u8], out: &mut Vec<u8>, last: bool) -> Result<(), DecodeError> {
        let n = self.layers.len();
        for i in 0..n {
            // Input: the chunk for the outermost layer, else the previous layer's output.
            let (before, rest) = self.between.split_at_mut(i);
            let input: &[u8] = if i == 0 { chunk } else { &before[i - 1] };
            let target: &mut Vec<u8> = if i + 1 == n { &mut *out } else { &mut rest[0] };
            let layer = &mut self.layers[i];
            layer.push(input, target)?;
            if last {
                layer.finish(target)?;
            }
            if i > 0 {
                before[i - 1].clear();
            }
        }
        Ok(())
    }
}
