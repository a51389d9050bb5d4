//! The value codec: a leading format-version byte, then bincode 2 (standard configuration:
//! little-endian varints), compressed from version 3 on. Decoding never panics: an unknown
//! version, a truncated or corrupt value, a dictionary the process does not know, or trailing
//! bytes are each a typed error.
//!
//! Each value names its own version, so a file holds values of several versions side by side:
//! this binary writes [`CODEC_VERSION`] (or [`PLAIN_VERSION`] where compressing does not pay)
//! and reads every version back to [`OLDEST_CODEC_VERSION`], each value type saying how its older
//! layouts map to today's ([`Layout`]).
//!
//! Compression: a verdict, outcome row or event is a JSON-ish record of a few hundred bytes,
//! too small for a compressor to learn much from alone; with a zstd dictionary trained on the
//! database's own values (`store/dictionary.rs`) the synthetic mix's values shrank about 4x
//! (`compare sizes`, 100k verdicts: 694 to 168 bytes per legacy line). A version-3 value is
//! one zstd frame that names its dictionary by the dictionary's zstd id, which zstd derives
//! from the dictionary's content:
//! the ids are therefore the same in every database that holds the same dictionary, and the
//! process-wide [`registry`] of prepared dictionaries is shared by every store it opens.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zstd::zstd_safe::{self, CCtx, CDict, DCtx, DDict};

/// The version this binary writes for a compressed value.
///
/// - Version 1: bincode 2.0.1, `config::standard()`, serde encoding of the structs in
///   `store/values.rs` (field order is the format). Frozen copy of the verdict layout:
///   `migrations/src/v0002_claims.rs`.
/// - Version 2 (schema version 5): every value gains a last field, `repo`, its repository
///   (empty for the default namespace). Version-1 values read as the default namespace.
/// - Version 3 (schema version 7): the version-2 body as one zstd frame compressed with a
///   dictionary of `codec_dictionaries`, which the frame names (its dictionary id).
/// - Version 4 (schema version 9): not a value but a reference to the verdict a KB row or event
///   is recomputed from ([`REFERENCE_VERSION`]).
/// - Version 5 (schema version 11): a version-3 value whose start can be read alone
///   ([`SPLIT_VERSION`]).
pub const CODEC_VERSION: u8 = 3;

/// The version of a reference (schema version 9): the value of a verdict's own KB row or
/// observer event when the verdict recomputes it exactly, the byte `4` then the distance back
/// to the verdict's seq (a bincode varint). It is not a value of its own type: [`decode`]
/// refuses it, and `store/verdict_lines.rs` resolves it against the verdict.
pub const REFERENCE_VERSION: u8 = 4;

/// The version of a value whose start can be read without decompressing the rest (schema
/// version 11): one zstd frame, with the dictionary as in version 3, of a *lead* (a bincode
/// string) then the version-2 body, the frame's first block ending part-way into the body. A
/// verdict is stored so, its repository as the lead and the first block ending where its JSON
/// begins: the export and the history read a verdict's few fields from the first block
/// ([`open_first_block`]), not its JSON. Every other reader sees the version-2 body ([`open`]).
pub const SPLIT_VERSION: u8 = 5;

/// The newest version a file this binary opens may hold.
pub const NEWEST_VERSION: u8 = SPLIT_VERSION;

/// The version this binary writes for a value it does not compress: the database has no
/// dictionary yet, or the value is one of the small ones (findings, dismissals).
pub const PLAIN_VERSION: u8 = 2;

/// The oldest version this binary reads.
pub const OLDEST_CODEC_VERSION: u8 = 1;

/// A value larger than this is corrupt: no request body comes near it.
const MAX_VALUE_BYTES: usize = 256 << 20;

/// The most a single input (a request body, a legacy line or verdict file) may be: a value
/// holds an input with what is derived from it (a verdict's JSON, its KB row and event), and
/// must stay under [`MAX_VALUE_BYTES`] to be read back. `--max-body` and `--max-line` are
/// refused above it.
pub const MAX_INPUT_BYTES: usize = MAX_VALUE_BYTES / 4;

/// A zstd block holds at most 128 KiB (RFC 8878): a version-5 value's lead and the body
/// before the split must fit in its first block, with room to spare.
const MAX_FIRST_BLOCK: usize = 128 << 10;

/// The content of a version-5 value, at most: its first block is read with zstd's streaming
/// decoder, whose window (the frame's content, for a value) is capped at this
/// ([`SPLIT_WINDOW_LOG`]), so that a damaged frame header cannot make the thread's decoder
/// hold more. A larger verdict is stored by version 3.
const MAX_SPLIT_CONTENT: usize = 1 << SPLIT_WINDOW_LOG;
const SPLIT_WINDOW_LOG: u32 = 20;

/// The zstd level values are compressed at. With a dictionary, small records gain little from
/// higher levels: level 3 made the synthetic mix's file 1% smaller than level 1 (`compare
/// sizes`, 100k verdicts) while compression was 13% of the CPU of a storage-layer ingest of 64
/// events per commit (perf); the writer thread is the service's bottleneck, so level 1.
const LEVEL: i32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error(
        "unknown codec version {found} (this binary reads versions {OLDEST_CODEC_VERSION} to \
         {NEWEST_VERSION})"
    )]
    UnknownVersion { found: u8 },
    #[error("corrupt value: {0}")]
    Corrupt(String),
    #[error("corrupt value: {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("the value was compressed with dictionary {0}, which this database does not hold")]
    UnknownDictionary(u32),
    #[error("a reference to the verdict {0} seqs away, read as a value of its own")]
    Reference(i64),
    #[error("a reference to the verdict at seq {0}, which does not recompute this record")]
    BrokenReference(u64),
}

/// A stored value type and its older layouts.
pub trait Layout<'a>: Deserialize<'a> {
    /// The same value as codec version 1 stored it.
    type V1: Deserialize<'a>;
    /// Today's value from a version-1 one.
    fn from_v1(old: Self::V1) -> Self;
}

/// A trained dictionary, prepared for compressing and decompressing.
pub struct Dictionary {
    id: u32,
    bytes: Vec<u8>,
    compress: CDict<'static>,
    decompress: DDict<'static>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Dictionary {
    /// Prepares the dictionary `bytes` (as zstd's trainer made them); `None` when they are not
    /// a zstd dictionary (no dictionary id).
    pub fn new(bytes: Vec<u8>) -> Option<Dictionary> {
        let id = zstd_safe::get_dict_id_from_dict(&bytes)?.get();
        Some(Dictionary {
            id,
            compress: CDict::create(&bytes, LEVEL),
            decompress: DDict::create(&bytes),
            bytes,
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The dictionaries this process has loaded, by id (see the module doc).
pub mod registry {
    use super::*;

    static DICTIONARIES: LazyLock<RwLock<HashMap<u32, Arc<Dictionary>>>> =
        LazyLock::new(Default::default);

    /// Makes `bytes` known as a dictionary and returns it prepared. Registering the same
    /// dictionary again returns the one already known; `None` when `bytes` are not a zstd
    /// dictionary, or when another dictionary with the same id is already known (zstd's ids
    /// are 31-bit hashes of the content: two dictionaries that collide are refused rather than
    /// ever confused).
    pub fn register(bytes: &[u8]) -> Option<Arc<Dictionary>> {
        let id = zstd_safe::get_dict_id_from_dict(bytes)?.get();
        if let Some(known) = get(id) {
            return (known.bytes == bytes).then_some(known);
        }
        let prepared = Arc::new(Dictionary::new(bytes.to_vec())?);
        let mut all = DICTIONARIES.write().unwrap_or_else(PoisonError::into_inner);
        let known = all.entry(id).or_insert(prepared);
        (known.bytes == bytes).then(|| known.clone())
    }

    pub fn get(id: u32) -> Option<Arc<Dictionary>> {
        DICTIONARIES
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }
}

thread_local! {
    /// Each thread's zstd contexts (making one allocates) and last dictionary looked up.
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts {
        compress: CCtx::create(),
        decompress: DCtx::create(),
        last: None,
    });
}

struct Contexts {
    compress: CCtx<'static>,
    decompress: DCtx<'static>,
    last: Option<Arc<Dictionary>>,
}

/// Encodes `value` uncompressed, in [`PLAIN_VERSION`].
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(PLAIN_VERSION);
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .expect("the value structs always encode and writing to a Vec cannot fail");
    out
}

/// Encodes `value` compressed with `dictionary` ([`CODEC_VERSION`]), or uncompressed when there
/// is none or compressing would not make it smaller.
pub fn encode_with<T: Serialize>(value: &T, dictionary: Option<&Dictionary>) -> Vec<u8> {
    let plain = encode(value);
    match dictionary {
        Some(dictionary) => compress(&plain, dictionary).unwrap_or(plain),
        None => plain,
    }
}

/// A plain value (version byte then body) as a version-3 value, when that is smaller.
pub(super) fn compress(plain: &[u8], dictionary: &Dictionary) -> Option<Vec<u8>> {
    let (&version, body) = plain.split_first()?;
    if version != PLAIN_VERSION {
        return None;
    }
    let mut out = vec![0; 1 + zstd_safe::compress_bound(body.len())];
    out[0] = CODEC_VERSION;
    // The frame keeps its content size (decoding allocates exactly) and the dictionary's id
    // (decoding finds the dictionary); no checksum: redb checksums its pages.
    let written = CONTEXTS
        .with_borrow_mut(|c| {
            c.compress
                .compress_using_cdict(&mut out[1..], body, &dictionary.compress)
        })
        .ok()?;
    out.truncate(1 + written);
    (out.len() < plain.len()).then_some(out)
}

/// A plain value (version byte then body) as a version-5 value: `lead` then the body in one
/// frame whose first block ends `first` bytes into the body, when that is smaller. `None` when
/// it is not, when `plain` is not plain, `first` is past its end, or the value is too large
/// for its first block to be read alone within the bounds ([`MAX_FIRST_BLOCK`],
/// [`MAX_SPLIT_CONTENT`]). The caller checks that the first block reads back
/// (`VerdictValue::encode`): a value is version 5 only when it does.
pub fn compress_split(
    plain: &[u8],
    lead: &str,
    first: usize,
    dictionary: &Dictionary,
) -> Option<Vec<u8>> {
    let (&PLAIN_VERSION, body) = plain.split_first()? else {
        return None;
    };
    if lead.len() + first >= MAX_FIRST_BLOCK || body.len() + lead.len() + 9 > MAX_SPLIT_CONTENT {
        return None;
    }
    let mut content = Vec::with_capacity(lead.len() + 1 + body.len());
    bincode::serde::encode_into_std_write(lead, &mut content, bincode::config::standard())
        .expect("writing to a Vec cannot fail");
    let first = content.len() + first;
    content.extend_from_slice(body);
    let (head, rest) = (content.get(..first)?, content.get(first..)?);
    let mut out = vec![0; 1 + zstd_safe::compress_bound(content.len()) + 8];
    out[0] = SPLIT_VERSION;
    let written = CONTEXTS.with_borrow_mut(|c| -> Result<usize, usize> {
        let cctx = &mut c.compress;
        cctx.reset(zstd_safe::ResetDirective::SessionAndParameters)?;
        cctx.ref_cdict(&dictionary.compress)?;
        cctx.set_pledged_src_size(Some(content.len() as u64))?;
        let mut output = zstd_safe::OutBuffer::around(&mut out[1..]);
        // A flush ends the block at `first`; the rest goes on in the same frame, so its
        // matches still reach back into the first block.
        for (part, end) in [
            (head, zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush),
            (rest, zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_end),
        ] {
            let mut input = zstd_safe::InBuffer::around(part);
            while cctx.compress_stream2(&mut output, &mut input, end)? != 0 {}
        }
        Ok(output.pos())
    });
    out.truncate(1 + written.ok()?);
    (out.len() < plain.len()).then_some(out)
}

pub fn decode<T: DeserializeOwned + for<'a> Layout<'a>>(bytes: &[u8]) -> Result<T, CodecError> {
    let plain = open(bytes)?;
    decode_borrowed(&plain)
}

/// The value stored for a record whose seq is `distance` after (or, negative, before) the
/// seq of the verdict it is recomputed from.
pub fn reference(distance: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4);
    out.push(REFERENCE_VERSION);
    bincode::serde::encode_into_std_write(distance, &mut out, bincode::config::standard())
        .expect("writing to a Vec cannot fail");
    out
}

/// Whether the stored value `bytes` is a version-5 value ([`SPLIT_VERSION`]).
pub fn is_split(bytes: &[u8]) -> bool {
    bytes.first() == Some(&SPLIT_VERSION)
}

/// Whether the stored value `bytes` is a [`reference`].
pub fn is_reference(bytes: &[u8]) -> bool {
    bytes.first() == Some(&REFERENCE_VERSION)
}

/// For a value stored under `seq`: the seq of the verdict it refers to when it is a
/// [`reference`], `None` when it is a value of its own.
pub fn referenced_seq(seq: u64, bytes: &[u8]) -> Result<Option<u64>, CodecError> {
    let Some((&REFERENCE_VERSION, body)) = bytes.split_first() else {
        return Ok(None);
    };
    let distance: i64 = decode_body(body)?;
    let verdict = i128::from(seq) - i128::from(distance);
    match u64::try_from(verdict) {
        Ok(verdict) if distance != 0 && verdict > 0 => Ok(Some(verdict)),
        _ => Err(CodecError::Corrupt(format!(
            "a reference {distance} seqs from seq {seq}"
        ))),
    }
}

/// A stored value as its plain form (version byte then bincode body): borrowed when it was
/// stored plain, decompressed when it was compressed. The `…Ref` views borrow from it.
pub fn open(bytes: &[u8]) -> Result<Cow<'_, [u8]>, CodecError> {
    let mut plain = Vec::new();
    match decompress_into(bytes, &mut plain)? {
        None => Ok(Cow::Borrowed(bytes)),
        Some(0) => Ok(Cow::Owned(plain)),
        Some(start) => Ok(Cow::Owned(plain.split_off(start))),
    }
}

/// [`open`] into `scratch`, reused from value to value (a walk over many values allocates
/// once instead of once per value).
pub fn open_in<'a>(bytes: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<&'a [u8], CodecError> {
    match decompress_into(bytes, scratch)? {
        None => Ok(bytes),
        Some(start) => Ok(&scratch[start..]),
    }
}

/// Decompresses a compressed value into `scratch` and says where in it the plain value
/// (version byte then body) starts; `None` for a value stored plain.
fn decompress_into(bytes: &[u8], scratch: &mut Vec<u8>) -> Result<Option<usize>, CodecError> {
    let Some((size, dictionary)) = compressed(bytes)? else {
        return Ok(None);
    };
    // Only growth is zero-filled: a reused buffer is just cut to length.
    if scratch.len() < 1 + size {
        scratch.resize(1 + size, 0);
    } else {
        scratch.truncate(1 + size);
    }
    decompress(bytes, &dictionary, scratch)?;
    if bytes[0] != SPLIT_VERSION {
        return Ok(Some(0));
    }
    // Past the lead: its last byte becomes the version byte of the body after it.
    let (_, lead) = read_lead(&scratch[1..])?;
    scratch[lead] = PLAIN_VERSION;
    Ok(Some(lead))
}

/// The lead a version-5 value's content starts with, and its length in bytes.
fn read_lead(content: &[u8]) -> Result<(&str, usize), CodecError> {
    decode_start(content).map_err(|e| CodecError::Corrupt(format!("the lead: {e}")))
}

/// The start of a version-5 value ([`is_split`]), decompressed alone into `scratch`: its
/// lead, and as much of its body as the frame's first block holds (read it with
/// [`decode_prefix`]). A value of another version is corrupt here.
pub fn open_first_block<'a>(
    bytes: &[u8],
    scratch: &'a mut Vec<u8>,
) -> Result<(&'a str, &'a [u8]), CodecError> {
    let (true, Some((size, dictionary))) = (is_split(bytes), compressed(bytes)?) else {
        return Err(CodecError::Corrupt("not a version-5 value".into()));
    };
    let frame = &bytes[1..];
    let first_block = first_block_end(frame)
        .ok_or_else(|| CodecError::Corrupt("a zstd frame without a whole first block".into()))?;
    // A block holds at most 128 KiB, whatever the frame claims in all.
    scratch.clear();
    scratch.resize(size.min(MAX_FIRST_BLOCK), 0);
    let written = CONTEXTS
        .with_borrow_mut(|c| -> Result<usize, usize> {
            let dctx = &mut c.decompress;
            dctx.reset(zstd_safe::ResetDirective::SessionAndParameters)?;
            dctx.set_parameter(zstd_safe::DParameter::WindowLogMax(SPLIT_WINDOW_LOG))?;
            dctx.ref_ddict(&dictionary.decompress)?;
            let mut output = zstd_safe::OutBuffer::around(&mut scratch[..]);
            let mut input = zstd_safe::InBuffer::around(&frame[..first_block]);
            dctx.decompress_stream(&mut output, &mut input)?;
            Ok(output.pos())
        })
        .map_err(|code| CodecError::Corrupt(zstd_safe::get_error_name(code).to_owned()))?;
    let content = &scratch[..written];
    let (lead, used) = read_lead(content)?;
    Ok((lead, &content[used..]))
}

/// The layout of a zstd frame header (RFC 8878): the magic number, the descriptor byte, a
/// window byte unless the frame is a single segment, the dictionary id, the content size.
struct FrameHeader {
    /// Where the dictionary id is (the tests forge headers around it).
    #[cfg(test)]
    dictionary_id: std::ops::Range<usize>,
    /// The header's length: where the first block's header starts.
    len: usize,
}

impl FrameHeader {
    fn of(frame: &[u8]) -> Option<FrameHeader> {
        let descriptor = *frame.get(4)?;
        let single_segment = descriptor & 0x20 != 0;
        let dictionary_id_len = [0, 1, 2, 4][usize::from(descriptor & 3)];
        let content_size_len = match descriptor >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let dictionary_id_at = 5 + usize::from(!single_segment);
        Some(FrameHeader {
            #[cfg(test)]
            dictionary_id: dictionary_id_at..dictionary_id_at + dictionary_id_len,
            len: dictionary_id_at + dictionary_id_len + content_size_len,
        })
    }
}

/// Where the first block of the zstd `frame` ends (the frame header, then blocks of a 3-byte
/// header each), `None` when the frame is cut before it.
fn first_block_end(frame: &[u8]) -> Option<usize> {
    let header = FrameHeader::of(frame)?.len;
    let block = frame.get(header..header + 3)?;
    let block = u32::from(block[0]) | u32::from(block[1]) << 8 | u32::from(block[2]) << 16;
    // Raw blocks carry their size in bytes, RLE blocks one byte, compressed ones their size.
    let stored = match (block >> 1) & 3 {
        0 | 2 => usize::try_from(block >> 3).ok()?,
        1 => 1,
        _ => return None,
    };
    let end = header + 3 + stored;
    (end <= frame.len()).then_some(end)
}

/// The dictionary id a compressed value names (`None` for a plain value or no id).
pub fn dictionary_of(bytes: &[u8]) -> Option<u32> {
    match bytes.split_first() {
        Some((&(CODEC_VERSION | SPLIT_VERSION), body)) => {
            zstd_safe::get_dict_id_from_frame(body).map(|id| id.get())
        }
        _ => None,
    }
}

/// A compressed value's body size and dictionary, `None` for a value stored plain. The
/// dictionary is found before anything is allocated, and the size a frame claims is bounded by
/// [`MAX_VALUE_BYTES`]: a damaged value costs at most that.
fn compressed(bytes: &[u8]) -> Result<Option<(usize, Arc<Dictionary>)>, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != CODEC_VERSION && version != SPLIT_VERSION {
        return Ok(None);
    }
    let id = zstd_safe::get_dict_id_from_frame(body).map_or(0, |id| id.get());
    let dictionary = CONTEXTS.with_borrow_mut(|c| match &c.last {
        Some(d) if d.id == id => Ok(d.clone()),
        _ => {
            let d = registry::get(id).ok_or(CodecError::UnknownDictionary(id))?;
            c.last = Some(d.clone());
            Ok(d)
        }
    })?;
    match zstd_safe::get_frame_content_size(body) {
        Ok(Some(size)) if size <= MAX_VALUE_BYTES as u64 => Ok(Some((size as usize, dictionary))),
        Ok(Some(size)) => Err(CodecError::Corrupt(format!("{size} bytes compressed"))),
        Ok(None) | Err(_) => Err(CodecError::Corrupt("not a zstd frame".into())),
    }
}

/// Decompresses the compressed value `bytes` into `plain`, whose length is the version byte
/// plus the body's size ([`compressed`]).
fn decompress(bytes: &[u8], dictionary: &Dictionary, plain: &mut [u8]) -> Result<(), CodecError> {
    plain[0] = PLAIN_VERSION;
    let written = CONTEXTS.with_borrow_mut(|c| {
        c.decompress
            .decompress_using_ddict(&mut plain[1..], &bytes[1..], &dictionary.decompress)
            .map_err(|code| CodecError::Corrupt(zstd_safe::get_error_name(code).to_owned()))
    })?;
    if written != plain.len() - 1 {
        return Err(CodecError::Corrupt(
            "zstd frame shorter than it says".into(),
        ));
    }
    Ok(())
}

/// Decodes a plain value ([`open`]'s output, or a value stored plain) into a view that borrows
/// its strings from `bytes` instead of copying them (the `…Ref` views in `store/values.rs`),
/// with the same checks.
pub fn decode_borrowed<'a, T: Layout<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    match version {
        PLAIN_VERSION => decode_body(body),
        1 => decode_body::<T::V1>(body).map(T::from_v1),
        REFERENCE_VERSION => Err(CodecError::Reference(decode_body(body).unwrap_or(0))),
        found => Err(CodecError::UnknownVersion { found }),
    }
}

/// Decodes the fields of `T` from the start of a version-2 body, whatever follows them (the
/// first block of a version-5 value, [`open_first_block`]).
pub fn decode_prefix<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, CodecError> {
    decode_start(body).map(|(value, _)| value)
}

/// A `T` decoded from the start of `bytes`, and the bytes it took.
fn decode_start<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, usize), CodecError> {
    let config = bincode::config::standard().with_limit::<MAX_VALUE_BYTES>();
    bincode::serde::borrow_decode_from_slice(bytes, config)
        .map_err(|e| CodecError::Corrupt(e.to_string()))
}

fn decode_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, CodecError> {
    let (value, used) = decode_start(body)?;
    if used != body.len() {
        return Err(CodecError::TrailingBytes(body.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::values::{
        EventValue, EventValueRef, OutcomeValue, OutcomeValueRef, VerdictHead, VerdictValue,
        VerdictValueRef,
    };

    /// A value as a version-1 writer encoded it: the version byte, then bincode of `fields`
    /// (a tuple in the struct's field order encodes as the struct did).
    fn v1_bytes<T: Serialize>(fields: &T) -> Vec<u8> {
        let mut out = vec![1];
        bincode::serde::encode_into_std_write(fields, &mut out, bincode::config::standard())
            .unwrap();
        out
    }
    use lakehouse_kb_migrations::frozen_verdict_v1::{self, VerdictV1};
    use proptest::prelude::*;

    fn verdict() -> impl Strategy<Value = VerdictValue> {
        (
            (any::<u64>(), ".*", ".*", ".*", ".*"),
            (
                any::<u64>(),
                any::<u64>(),
                any::<Option<u64>>(),
                any::<Option<f64>>(),
            ),
            (any::<u64>(), ".*", ".*"),
        )
            .prop_map(
                |((pr, head, at, overall, one), (b, w, i, ms), (recv, raw, repo))| VerdictValue {
                    pr_number: pr,
                    head_sha: head,
                    audited_at: at,
                    overall,
                    one_liner: one,
                    findings_block: b,
                    findings_warn: w,
                    findings_info: i,
                    audit_duration_ms: ms,
                    received_at_ms: recv,
                    raw_json: raw,
                    repo,
                },
            )
    }

    fn event() -> impl Strategy<Value = EventValue> {
        (
            (any::<u64>(), ".*", any::<bool>()),
            (
                any::<Option<String>>(),
                any::<Option<String>>(),
                any::<Option<String>>(),
            ),
            (any::<Option<String>>(), ".*", ".*"),
        )
            .prop_map(
                |((recv, source, success), (sig, kind, orig), (body, line, repo))| EventValue {
                    received_at_ms: recv,
                    source,
                    success,
                    sig_hash: sig,
                    event_kind: kind,
                    source_original: orig,
                    body,
                    line,
                    repo,
                },
            )
    }

    fn outcome() -> impl Strategy<Value = OutcomeValue> {
        (any::<u64>(), ".*", ".*", ".*", ".*").prop_map(|(recv, sig, kind, line, repo)| {
            OutcomeValue {
                received_at_ms: recv,
                sig_hash: sig,
                kind,
                line,
                repo,
            }
        })
    }

    /// Equality that treats NaN as equal to itself (bit patterns), for f64 fields.
    fn same_verdict(a: &VerdictValue, b: &VerdictValue) -> bool {
        let bits = |v: &VerdictValue| v.audit_duration_ms.map(f64::to_bits);
        let strip = |v: &VerdictValue| VerdictValue {
            audit_duration_ms: None,
            ..v.clone()
        };
        bits(a) == bits(b) && strip(a) == strip(b)
    }

    proptest! {
        #[test]
        fn verdict_round_trips(v in verdict()) {
            let back: VerdictValue = decode(&encode(&v)).unwrap();
            prop_assert!(same_verdict(&back, &v));
        }

        #[test]
        fn event_round_trips(e in event()) {
            prop_assert_eq!(decode::<EventValue>(&encode(&e)).unwrap(), e);
        }

        #[test]
        fn outcome_round_trips(o in outcome()) {
            prop_assert_eq!(decode::<OutcomeValue>(&encode(&o)).unwrap(), o);
        }

        /// The borrowing views read exactly the owned values' layout.
        #[test]
        fn event_ref_reads_the_event_layout(e in event()) {
            let bytes = encode(&e);
            let r: EventValueRef = decode_borrowed(&bytes).unwrap();
            prop_assert_eq!(r.received_at_ms, e.received_at_ms);
            prop_assert_eq!(r.source, e.source.as_str());
            prop_assert_eq!(r.success, e.success);
            prop_assert_eq!(r.sig_hash, e.sig_hash.as_deref());
            prop_assert_eq!(r.event_kind, e.event_kind.as_deref());
            prop_assert_eq!(r.source_original, e.source_original.as_deref());
            prop_assert_eq!(r.body, e.body.as_deref());
            prop_assert_eq!(r.line, e.line.as_str());
            prop_assert_eq!(r.repo, e.repo.as_str());
        }

        #[test]
        fn verdict_ref_reads_the_verdict_layout(v in verdict()) {
            let bytes = encode(&v);
            let r: VerdictValueRef = decode_borrowed(&bytes).unwrap();
            prop_assert_eq!(r.pr_number, v.pr_number);
            prop_assert_eq!(r.head_sha, v.head_sha.as_str());
            prop_assert_eq!(r.overall, v.overall.as_str());
            prop_assert_eq!(r.one_liner, v.one_liner.as_str());
            prop_assert_eq!(r.raw_json, v.raw_json.as_str());
            prop_assert_eq!(r.repo, v.repo.as_str());
        }

        /// Version-1 values (every value a schema-4 file holds) read as the default namespace,
        /// through the owned and the borrowed views alike.
        #[test]
        fn version_1_values_read_as_the_default_namespace(e in event(), o in outcome()) {
            let v1_event = v1_bytes(&(
                e.received_at_ms, &e.source, e.success, &e.sig_hash, &e.event_kind,
                &e.source_original, &e.body, &e.line,
            ));
            let back: EventValue = decode(&v1_event).unwrap();
            prop_assert_eq!(back, EventValue { repo: String::new(), ..e.clone() });
            let r: EventValueRef = decode_borrowed(&v1_event).unwrap();
            prop_assert_eq!((r.line, r.repo), (e.line.as_str(), ""));
            let v1_outcome = v1_bytes(&(o.received_at_ms, &o.sig_hash, &o.kind, &o.line));
            let back: OutcomeValue = decode(&v1_outcome).unwrap();
            prop_assert_eq!(back, OutcomeValue { repo: String::new(), ..o.clone() });
            let r: OutcomeValueRef = decode_borrowed(&v1_outcome).unwrap();
            prop_assert_eq!((r.line, r.repo), (o.line.as_str(), ""));
        }

        #[test]
        fn outcome_ref_reads_the_outcome_layout(o in outcome()) {
            let bytes = encode(&o);
            let r: OutcomeValueRef = decode_borrowed(&bytes).unwrap();
            prop_assert_eq!(r.received_at_ms, o.received_at_ms);
            prop_assert_eq!(r.sig_hash, o.sig_hash.as_str());
            prop_assert_eq!(r.kind, o.kind.as_str());
            prop_assert_eq!(r.line, o.line.as_str());
            prop_assert_eq!(r.repo, o.repo.as_str());
        }

        /// What a version-1 writer stored (the layout migrations/ froze) reads back as the
        /// same verdict in the default namespace.
        #[test]
        fn verdict_v1_values_read_back(v in verdict()) {
            let as_frozen = VerdictV1 {
                pr_number: v.pr_number,
                head_sha: v.head_sha.clone(),
                audited_at: v.audited_at.clone(),
                overall: v.overall.clone(),
                one_liner: v.one_liner.clone(),
                findings_block: v.findings_block,
                findings_warn: v.findings_warn,
                findings_info: v.findings_info,
                audit_duration_ms: v.audit_duration_ms,
                received_at_ms: v.received_at_ms,
                raw_json: v.raw_json.clone(),
            };
            let v1 = frozen_verdict_v1::encode(&as_frozen);
            let back: VerdictValue = decode(&v1).unwrap();
            let default_namespace = VerdictValue { repo: String::new(), ..v.clone() };
            prop_assert!(same_verdict(&back, &default_namespace));
            let r: VerdictValueRef = decode_borrowed(&v1).unwrap();
            prop_assert_eq!((r.raw_json, r.repo), (v.raw_json.as_str(), ""));
        }

        /// Arbitrary bytes never panic the decoder: each is a value or a typed error.
        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<VerdictValue>(&bytes);
            let _ = decode::<EventValue>(&bytes);
            let _ = decode::<OutcomeValue>(&bytes);
            let _ = decode_borrowed::<EventValueRef>(&bytes);
            let _ = decode_borrowed::<OutcomeValueRef>(&bytes);
            let _ = decode_borrowed::<VerdictValueRef>(&bytes);
        }

        /// Every truncation of a valid value is an error, never a different value.
        #[test]
        fn truncated_values_are_errors(e in event()) {
            let bytes = encode(&e);
            for cut in 0..bytes.len() {
                prop_assert!(decode::<EventValue>(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn version_and_trailing_bytes_are_typed_errors() {
        let o = OutcomeValue {
            received_at_ms: 1,
            sig_hash: "s".into(),
            kind: String::new(),
            line: "{}".into(),
            repo: String::new(),
        };
        let mut bytes = encode(&o);
        assert_eq!(decode::<OutcomeValue>(&[]), Err(CodecError::Empty));
        bytes[0] = NEWEST_VERSION + 1;
        assert_eq!(
            decode::<OutcomeValue>(&bytes),
            Err(CodecError::UnknownVersion {
                found: NEWEST_VERSION + 1
            })
        );
        // A reference is not a value of its own: only `verdict_lines.rs` resolves one.
        assert_eq!(
            decode::<OutcomeValue>(&reference(2)),
            Err(CodecError::Reference(2))
        );
        assert_eq!(referenced_seq(10, &reference(2)), Ok(Some(8)));
        assert_eq!(referenced_seq(10, &reference(-1)), Ok(Some(11)));
        assert_eq!(referenced_seq(10, &bytes), Ok(None));
        let before_the_start = reference(i64::MAX);
        for bad in [
            reference(0),
            reference(10),
            before_the_start,
            vec![REFERENCE_VERSION],
        ] {
            assert!(referenced_seq(10, &bad).is_err(), "{bad:?}");
        }
        bytes[0] = PLAIN_VERSION;
        bytes.push(0);
        assert_eq!(
            decode::<OutcomeValue>(&bytes),
            Err(CodecError::TrailingBytes(1))
        );
        // received_at_ms = 1, then a sig_hash length of ~2^63 (varint marker 0xfd + u64):
        // refused by the limit without allocating it.
        let huge = [
            PLAIN_VERSION,
            1,
            0xfd,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x7f,
        ];
        let err = decode::<OutcomeValue>(&huge).unwrap_err();
        assert!(
            matches!(err, CodecError::Corrupt(ref m) if m.contains("imit")),
            "{err:?}"
        );
    }

    /// A dictionary trained on `n` outcome rows like the store's (different PRs, same shape).
    fn trained(n: usize, salt: &str) -> Arc<Dictionary> {
        let samples: Vec<Vec<u8>> = (0..n)
            .map(|i| encode(&sample(i, salt))[1..].to_vec())
            .collect();
        let bytes = zstd::dict::from_samples(&samples, 8 << 10).unwrap();
        registry::register(&bytes).unwrap()
    }

    fn sample(i: usize, salt: &str) -> OutcomeValue {
        OutcomeValue {
            received_at_ms: 1_775_000_000_000 + i as u64,
            sig_hash: format!("pr{}-{:08x}", i % 97, i * 7919),
            kind: "audit".into(),
            line: format!(
                r#"{{"kind":"audit","sig_hash":"pr{}-{:08x}","overall":"{}","reason":"{salt} check {i}","ts":"2026-11-{:02}T10:00:00Z"}}"#,
                i % 97,
                i * 7919,
                ["approve", "block", "request_changes"][i % 3],
                1 + i % 28
            ),
            repo: String::new(),
        }
    }

    static DICTIONARY: LazyLock<Arc<Dictionary>> = LazyLock::new(|| trained(500, "shared"));

    proptest! {
        /// Compressed values read back as the same value, through the owned and the borrowed
        /// views, and are smaller than plain ones or not written compressed at all.
        #[test]
        fn compressed_values_round_trip(o in outcome(), v in verdict()) {
            let compressed = encode_with(&o, Some(&DICTIONARY));
            prop_assert_eq!(decode::<OutcomeValue>(&compressed).unwrap(), o.clone());
            let plain = open(&compressed).unwrap();
            let r: OutcomeValueRef = decode_borrowed(&plain).unwrap();
            prop_assert_eq!(r.line, o.line.as_str());
            // Through a reused buffer longer than the value and holding other bytes.
            let mut scratch = vec![0xee; 4096];
            let plain = open_in(&compressed, &mut scratch).unwrap();
            prop_assert_eq!(decode_borrowed::<OutcomeValueRef>(plain).unwrap().line, o.line.as_str());
            let compressed = encode_with(&v, Some(&DICTIONARY));
            prop_assert!(same_verdict(&decode::<VerdictValue>(&compressed).unwrap(), &v));
        }

        /// Every truncation of a compressed value, and any byte of it changed, is an error or
        /// (for a changed byte zstd cannot detect) a value, never a panic.
        #[test]
        fn damaged_compressed_values_fail_cleanly(i in 0usize..1000, flip in any::<usize>()) {
            let bytes = encode_with(&sample(i, "shared"), Some(&DICTIONARY));
            prop_assert_eq!(bytes[0], CODEC_VERSION);
            for cut in 0..bytes.len() {
                prop_assert!(decode::<OutcomeValue>(&bytes[..cut]).is_err());
            }
            let mut damaged = bytes.clone();
            damaged[flip % bytes.len()] ^= 0x5a;
            let _ = decode::<OutcomeValue>(&damaged);
        }
    }

    /// A verdict like the auditor's: its JSON repeats its fields and carries findings.
    fn realistic_verdict(i: usize, repo: &str) -> VerdictValue {
        let sha = format!("{:040x}", i * 2_654_435_761);
        let one_liner = format!("check {i}: {} findings need a look", i % 7);
        let findings: Vec<String> = (0..i % 5 + 1)
            .map(|f| format!(r#"{{"severity":"warn","check":"static","summary":"finding {f} of {i} in src/mod{f}.rs"}}"#))
            .collect();
        VerdictValue {
            pr_number: i as u64 % 500,
            head_sha: sha.clone(),
            audited_at: "2026-11-20T10:00:00.000Z".into(),
            overall: "request_changes".into(),
            one_liner: one_liner.clone(),
            findings_block: 0,
            findings_warn: (i % 5 + 1) as u64,
            findings_info: Some(2),
            audit_duration_ms: Some(1234.5),
            received_at_ms: 1_775_000_000_000 + i as u64,
            raw_json: format!(
                r#"{{"pr_number":{},"head_sha":"{sha}","overall":"request_changes","one_liner":"{one_liner}","findings":[{}],"metrics":{{"findings_block":0,"findings_warn":{}}}}}"#,
                i % 500,
                findings.join(","),
                i % 5 + 1
            ),
            repo: repo.into(),
        }
    }

    /// The head read in place equals the verdict's, NaN durations compared by bits.
    fn same_head(a: VerdictHead<'_>, b: VerdictHead<'_>) -> bool {
        let bits = |h: &VerdictHead<'_>| h.audit_duration_ms.map(f64::to_bits);
        bits(&a) == bits(&b)
            && VerdictHead {
                audit_duration_ms: None,
                ..a
            } == VerdictHead {
                audit_duration_ms: None,
                ..b
            }
    }

    /// Asserts what a stored verdict must read back as, through every reader; returns whether
    /// it was stored by version 5.
    fn reads_back(v: &VerdictValue, bytes: &[u8]) -> bool {
        assert!(same_verdict(&decode::<VerdictValue>(bytes).unwrap(), v));
        let plain = open(bytes).unwrap();
        let view: VerdictValueRef = decode_borrowed(&plain).unwrap();
        assert_eq!(view.raw_json, v.raw_json);
        assert_eq!(view.repo, v.repo);
        let mut scratch = vec![0xee; 4096];
        let plain = open_in(bytes, &mut scratch).unwrap();
        assert_eq!(
            decode_borrowed::<VerdictValueRef>(plain).unwrap().raw_json,
            v.raw_json
        );
        let mut scratch = vec![0xee; 7];
        assert!(same_head(
            VerdictHead::read(bytes, &mut scratch).unwrap(),
            v.as_view().head()
        ));
        if bytes[0] != SPLIT_VERSION {
            return false;
        }
        // The first block holds the lead and the body up to the JSON, not the JSON.
        let (lead, body) = open_first_block(bytes, &mut scratch).unwrap();
        assert_eq!(lead, v.repo);
        let json_and_after = v.raw_json.len() + encode(&v.repo).len() - 1;
        assert_eq!(body.len(), encode(v).len() - 1 - json_and_after);
        true
    }

    /// Verdicts whose JSON repeats itself (as a real one does), so that compressing pays and
    /// they are stored by version 5; any text in every field, escapes and non-ASCII included.
    fn compressible_verdict() -> impl Strategy<Value = VerdictValue> {
        let text = "(check|src/mod.rs|é|\"|\\\\|\n| |[a-z0-9]){0,40}";
        (verdict(), text, text, text, 10usize..40).prop_map(
            |(v, head_sha, one_liner, finding, n)| {
                // Ten findings or more, each with a line of its own: three empty summaries
                // beside a tail of random text did not pay for the frame's headers.
                let finding =
                    format!(r#"{{"summary":"bounds of src/mod.rs unchecked: {finding}"}}"#);
                let findings = vec![finding; n].join(",");
                VerdictValue {
                    head_sha,
                    one_liner,
                    raw_json: format!(r#"{{"findings":[{findings}],"tail":{:?}}}"#, v.raw_json),
                    ..v
                }
            },
        )
    }

    proptest! {
        /// A verdict stored by version 5 (when that pays) reads back whole through every
        /// reader, and its head alone from its first block.
        #[test]
        fn split_verdicts_read_back_whole_and_by_their_head(v in compressible_verdict()) {
            prop_assert!(reads_back(&v, &v.encode(Some(&DICTIONARY))), "not split");
            prop_assert!(!reads_back(&v, &v.encode(None)));
        }

        /// Any verdict, compressing or not, reads back through every reader.
        #[test]
        fn any_verdict_reads_back_through_every_reader(v in verdict()) {
            reads_back(&v, &v.encode(Some(&DICTIONARY)));
            reads_back(&v, &v.encode(None));
        }

        /// Any byte of a version-5 verdict changed is an error or a value, never a panic; a
        /// cut one never reads whole, and reads its head only when the cut spares its first
        /// block.
        #[test]
        fn damaged_split_verdicts_fail_cleanly(i in 0usize..1000, flip in any::<usize>()) {
            let v = realistic_verdict(i, if i % 2 == 0 { "" } else { "acme/api" });
            let bytes = v.encode(Some(&DICTIONARY));
            prop_assert_eq!(bytes[0], SPLIT_VERSION);
            let first_block = first_block_end(&bytes[1..]).unwrap();
            let mut scratch = Vec::new();
            for cut in 0..bytes.len() {
                prop_assert!(decode::<VerdictValue>(&bytes[..cut]).is_err());
                let head = VerdictHead::read(&bytes[..cut], &mut scratch);
                prop_assert_eq!(head.is_ok(), cut > first_block, "cut at {}", cut);
            }
            let mut damaged = bytes.clone();
            damaged[flip % bytes.len()] ^= 0x5a;
            let _ = decode::<VerdictValue>(&damaged);
            let _ = VerdictHead::read(&damaged, &mut scratch);
        }
    }

    /// A verdict whose fields before its JSON do not fit in one block, or too large for the
    /// bounded decoder, is stored by version 3, and reads back.
    #[test]
    fn verdicts_too_large_to_split_are_stored_whole() {
        for (one_liner, json, split) in [
            (100_000, 0, true),
            (131_000, 0, false),
            (140_000, 0, false),
            (10, 600_000, true),
            (10, 1_100_000, false),
        ] {
            let mut v = realistic_verdict(3, "acme/api");
            v.one_liner = "abcdefghij".repeat(one_liner / 10);
            v.raw_json = format!("{}{}", v.raw_json, " ".repeat(json));
            let bytes = v.encode(Some(&DICTIONARY));
            let want = if split { SPLIT_VERSION } else { CODEC_VERSION };
            assert_eq!(bytes[0], want, "one-liner {one_liner}, JSON +{json}");
            assert_eq!(reads_back(&v, &bytes), split);
        }
    }

    /// A version-5 value whose frame header was damaged to claim a window and content far
    /// larger than any split value's is refused by the head reader, which keeps its decoder
    /// small.
    #[test]
    fn a_damaged_window_claim_costs_the_head_reader_no_memory() {
        let bytes = realistic_verdict(5, "acme/api").encode(Some(&DICTIONARY));
        assert_eq!(bytes[0], SPLIT_VERSION);
        let frame = &bytes[1..];
        let header = FrameHeader::of(frame).unwrap();
        let id = header.dictionary_id.clone();
        // 8 bytes of content size, not a single segment, so a window descriptor: 2^27.
        let mut damaged = vec![SPLIT_VERSION];
        damaged.extend_from_slice(&frame[..4]);
        damaged.push(0xc0 | (frame[4] & 3));
        damaged.push((27 - 10) << 3);
        damaged.extend_from_slice(&frame[id]);
        damaged.extend_from_slice(&(200u64 << 20).to_le_bytes());
        damaged.extend_from_slice(&frame[header.len..]);
        let mut scratch = Vec::new();
        assert!(VerdictHead::read(&damaged, &mut scratch).is_err());
        assert!(scratch.len() <= MAX_FIRST_BLOCK);
        let held = CONTEXTS.with_borrow(|c| c.decompress.sizeof());
        assert!(held < 4 << 20, "the decoder holds {held} bytes");
    }

    /// Verdicts like the auditor's are stored by version 5, in about the bytes version 3 took.
    #[test]
    fn realistic_verdicts_are_split_at_little_cost() {
        let (mut split, mut whole) = (0, 0);
        for i in 0..200 {
            for repo in ["", "acme/api"] {
                let v = realistic_verdict(i, repo);
                let bytes = v.encode(Some(&DICTIONARY));
                assert!(reads_back(&v, &bytes), "verdict {i} not split");
                split += bytes.len();
                whole += encode_with(&v, Some(&DICTIONARY)).len();
            }
        }
        assert!(
            split * 100 <= whole * 105,
            "{split} bytes split, {whole} whole"
        );
    }

    #[test]
    fn compression_pays_on_records_like_the_dictionarys() {
        let plain: usize = (1000..1100)
            .map(|i| encode(&sample(i, "shared")).len())
            .sum();
        let compressed: usize = (1000..1100)
            .map(|i| encode_with(&sample(i, "shared"), Some(&DICTIONARY)).len())
            .sum();
        assert!(compressed * 2 < plain, "{compressed} of {plain} bytes");
    }

    #[test]
    fn a_value_naming_an_unknown_dictionary_is_a_typed_error() {
        // A dictionary this process has never registered: train one, then forget it by
        // compressing with an unregistered copy.
        let samples: Vec<Vec<u8>> = (0..300)
            .map(|i| encode(&sample(i, "unregistered"))[1..].to_vec())
            .collect();
        let bytes = zstd::dict::from_samples(&samples, 4 << 10).unwrap();
        let unknown = Dictionary::new(bytes).unwrap();
        let value = encode_with(&sample(1, "unregistered"), Some(&unknown));
        assert_eq!(value[0], CODEC_VERSION);
        if registry::get(unknown.id()).is_none() {
            assert_eq!(
                decode::<OutcomeValue>(&value),
                Err(CodecError::UnknownDictionary(unknown.id()))
            );
        }
    }

    #[test]
    fn the_registry_keeps_one_dictionary_per_id() {
        let d = trained(300, "registry");
        let again = registry::register(d.bytes()).unwrap();
        assert!(Arc::ptr_eq(&d, &again));
        assert!(registry::register(b"not a dictionary").is_none());
    }
}
