//! Batched payloads (`payload_format: json_batch` or `csv_batch`), without I/O: the values of
//! up to `batch_ms` / `batch_max` gathered into one message on the device's batch topic.
//!
//! [`BatchPayload`] writes one batch; [`Batcher`] decides when a batch is published: when it
//! holds `batch_max` values (or [`MAX_BATCH_BYTES`]), or `batch_ms` after its first value.
//! Which stream entries a batch stands for is the window's part (`Window::gather_batches`,
//! `Window::seal`): each is acknowledged only after the PUBACK/PUBCOMP of its batch.
//!
//! The formats (docs/payloads.md):
//! - `json_batch`: `[{"topic":"tag/rtu1/ua12/in","value":231.123,"ts":1796118651026,"quality":1},..]`
//!   (keys in this order; `value` `null` for `nan` and the infinities);
//! - `csv_batch`: one `topic,value,timestamp,quality` line per value, each ended by `\n`; the
//!   topic is everything before the last three commas (a topic may hold commas, never a line
//!   break: such a topic is refused by the plan).
//!
//! With `batch_compression: zlib` the finished payload is compressed into the zlib format
//! (RFC 1950), what `zlib.decompress` (Python), `zlib.inflateSync` (Node.js) and
//! `java.util.zip.Inflater` read.

use std::io::Write;
use std::time::{Duration, Instant};

use config::mqtt::{BatchCompression, BatchSettings, PayloadFormat, Topic};
use flate2::{Compress, FlushCompress, Status};
use tagbus::TagValue;

use crate::payload::{write_integer, write_json_number};

/// A batch is published before it grows beyond this many bytes (whatever `batch_max` says),
/// well below the largest packet (`conn::MAX_PACKET`, 256 KiB) and brokers' usual limits.
pub(crate) const MAX_BATCH_BYTES: usize = 128 * 1024;

/// One batch payload being written.
#[derive(Debug)]
pub(crate) struct BatchPayload {
    json: bool,
    buf: Vec<u8>,
    values: usize,
}

impl BatchPayload {
    /// An empty batch of `format` (`json_batch`; anything else writes CSV lines).
    pub(crate) fn new(format: PayloadFormat) -> Self {
        Self {
            json: format == PayloadFormat::JsonBatch,
            buf: Vec::new(),
            values: 0,
        }
    }

    /// Values in the batch.
    pub(crate) fn len(&self) -> usize {
        self.values
    }

    /// Bytes written so far.
    pub(crate) fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Adds the value of `topic`.
    pub(crate) fn push(&mut self, topic: &Topic, value: &TagValue) {
        // Numbers are written straight into the batch (no text per value).
        let b = &mut self.buf;
        if self.json {
            b.push(if self.values == 0 { b'[' } else { b',' });
            b.extend_from_slice(b"{\"topic\":");
            // A topic is UTF-8 without NUL; serde_json escapes quotes, backslashes and
            // control characters.
            let _ = serde_json::to_writer(&mut *b, topic.as_str());
            b.extend_from_slice(b",\"value\":");
            write_json_number(b, value.value);
            b.extend_from_slice(b",\"ts\":");
            write_integer(b, value.timestamp_ms);
            b.extend_from_slice(b",\"quality\":");
            write_integer(b, value.quality());
            b.push(b'}');
        } else {
            // `topic,` and the WCC Lite payload `value,timestamp_ms,quality`.
            b.extend_from_slice(topic.as_str().as_bytes());
            b.push(b',');
            let _ = write!(b, "{}", value.wcc_payload());
            b.push(b'\n');
        }
        self.values = self.values.saturating_add(1);
    }

    /// The payload (`[]` for an empty JSON batch).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.json {
            if self.values == 0 {
                self.buf.push(b'[');
            }
            self.buf.push(b']');
        }
        self.buf
    }
}

/// When the batch of one connection is published.
#[derive(Debug)]
pub(crate) struct Batcher {
    format: PayloadFormat,
    /// The zlib compressor of `batch_compression: zlib`, reset for every batch (its
    /// window and tables, about 260 KiB, are set up once per connection, not per batch).
    zlib: Option<Box<Compress>>,
    linger: Duration,
    max_values: usize,
    batch: BatchPayload,
    /// When the first value of the batch came.
    opened: Option<Instant>,
}

impl Batcher {
    /// An empty batcher of a batch `format`.
    pub(crate) fn new(format: PayloadFormat, settings: &BatchSettings) -> Self {
        Self {
            format,
            zlib: (settings.compression == BatchCompression::Zlib)
                .then(|| Box::new(Compress::new(flate2::Compression::new(ZLIB_LEVEL), true))),
            linger: settings.linger,
            max_values: usize::from(settings.max_values.max(1)),
            batch: BatchPayload::new(format),
            opened: None,
        }
    }

    /// Adds a value at `now`.
    pub(crate) fn push(&mut self, topic: &Topic, value: &TagValue, now: Instant) {
        self.opened.get_or_insert(now);
        self.batch.push(topic, value);
    }

    /// Whether the batch is due now: full (`batch_max` values or [`MAX_BATCH_BYTES`]).
    /// An entry's values all go into one batch, so the publisher asks after each entry.
    pub(crate) fn is_full(&self) -> bool {
        self.batch.len() >= self.max_values || self.batch.bytes() >= MAX_BATCH_BYTES
    }

    /// When the batch is due at the latest (`batch_ms` after its first value); None when
    /// it is empty.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.opened.and_then(|o| o.checked_add(self.linger))
    }

    /// Takes the batch to publish (None when empty) and starts a new one.
    pub(crate) fn take(&mut self) -> Option<(Vec<u8>, usize)> {
        self.opened.take()?;
        let batch = std::mem::replace(&mut self.batch, BatchPayload::new(self.format));
        let n = batch.len();
        let payload = batch.finish();
        let payload = match self.zlib.as_deref_mut() {
            None => payload,
            Some(z) => match zlib(z, &payload) {
                Ok(compressed) => compressed,
                // Compressing into memory does not fail; were it to, the values still go
                // out, as written (a consumer sees a payload that is not zlib, nothing is
                // lost).
                Err(e) => {
                    tracing::error!(error = %e, "zlib compression of a batch failed; sent uncompressed");
                    payload
                }
            },
        };
        Some((payload, n))
    }
}

/// The zlib level. Measured with zlib-rs on batches of 100 and 1,000 measurements: 3 packs
/// them as small as 6 (zlib's default) does, within 2%, in half the CPU (about 0.3 us a
/// value); 1 is zlib-rs's quick mode (fixed Huffman codes), 50% larger.
const ZLIB_LEVEL: u32 = 3;

/// `input` as one zlib stream, by `z` after a reset.
fn zlib(z: &mut Compress, input: &[u8]) -> Result<Vec<u8>, String> {
    z.reset();
    let mut out = Vec::with_capacity((input.len() / 4).saturating_add(64));
    // Each round fills the spare capacity; the output is at most a little larger than the
    // input, so doubling ends this in a few rounds (bounded all the same).
    for _ in 0..64 {
        let consumed = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
        let rest = input.get(consumed..).unwrap_or_default();
        match z.compress_vec(rest, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(Status::Ok | Status::BufError) => out.reserve(out.capacity().max(64)),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("no end of stream after {} bytes", out.len()))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::print_stdout)]
mod tests {
    use super::*;

    fn t(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }

    fn v(s: &str) -> TagValue {
        s.parse().unwrap()
    }

    fn settings(ms: u64, max: u16) -> BatchSettings {
        BatchSettings {
            linger: Duration::from_millis(ms),
            max_values: max,
            topic: None,
            compression: BatchCompression::None,
        }
    }

    /// zlib as an independent reader sees it: the 2-byte header (CMF 0x78: deflate, 32 KiB
    /// window; FLG 0x5e: level 2 to 5, FCHECK makes the pair a multiple of 31), then what
    /// inflates to the batch.
    #[test]
    fn a_zlib_batch_inflates_to_the_csv_lines() {
        use std::io::Read;
        let t0 = Instant::now();
        let zlib = BatchSettings {
            compression: BatchCompression::Zlib,
            ..settings(1000, 100)
        };
        let mut b = Batcher::new(PayloadFormat::CsvBatch, &zlib);
        let mut plain = Batcher::new(PayloadFormat::CsvBatch, &settings(1000, 100));
        for i in 0..100 {
            let (topic, value) = (
                t(&format!("tag/rtu1/ua{i}/in")),
                v(&format!(
                    "{:.3},{},",
                    220.0 + f64::from(i) * 0.017,
                    1796118651000_i64 + i64::from(i) * 10
                )),
            );
            b.push(&topic, &value, t0);
            plain.push(&topic, &value, t0);
        }
        let ((z, n), (csv, _)) = (b.take().unwrap(), plain.take().unwrap());
        assert_eq!(n, 100);
        assert_eq!(z[..2], [0x78, 0x5e]);
        assert_eq!(u16::from_be_bytes([z[0], z[1]]) % 31, 0);
        let mut inflated = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, csv);
        assert!(z.len() * 3 < csv.len(), "{} of {}", z.len(), csv.len());

        // The compressor is reset between batches; one that packs badly (topics of
        // pseudo-random letters) outgrows the first guess of the output's size.
        let mut x: u32 = 7;
        for _ in 0..2 {
            let (mut b2, mut plain2) = (
                Batcher::new(PayloadFormat::CsvBatch, &zlib),
                Batcher::new(PayloadFormat::CsvBatch, &settings(1000, 100)),
            );
            for _ in 0..50 {
                let topic: String = (0..40)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        char::from(b'a' + u8::try_from((x >> 16) % 26).unwrap())
                    })
                    .collect();
                b.push(&t(&topic), &v("1,1,"), t0);
                b2.push(&t(&topic), &v("1,1,"), t0);
                plain2.push(&t(&topic), &v("1,1,"), t0);
            }
            let ((z, _), (z2, _), (csv, _)) = (
                b.take().unwrap(),
                b2.take().unwrap(),
                plain2.take().unwrap(),
            );
            assert_eq!(z, z2, "a reset compressor writes what a new one writes");
            assert!(z.len() > csv.len() / 4, "{} of {}", z.len(), csv.len());
            let mut inflated = Vec::new();
            flate2::read::ZlibDecoder::new(&z[..])
                .read_to_end(&mut inflated)
                .unwrap();
            assert_eq!(inflated, csv);
        }
    }

    /// The uplink bench's values climb by 0.001, which deflate likes; measurements that
    /// wander at random (100 signals, each moving by up to +-0.05 every second, 3 decimals,
    /// a value every 10 ms: the bench's 100-signal case) still fit in 12 bytes a value
    /// with the MQTT header, topic and packet id of the batch's PUBLISH.
    #[test]
    fn a_zlib_batch_of_wandering_measurements_costs_under_12_bytes_a_value() {
        let zlib = BatchSettings {
            compression: BatchCompression::Zlib,
            ..settings(1000, 1000)
        };
        let mut b = Batcher::new(PayloadFormat::CsvBatch, &zlib);
        let mut x: u64 = 99;
        let mut level: Vec<f64> = (0..100).map(|k| 10.0 + f64::from(k) * 3.7).collect();
        let topic = "fieldbridge/gw/batch";
        let (mut bytes, mut values) = (0, 0);
        for second in 0..10_i64 {
            for (k, lv) in level.iter_mut().enumerate() {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                *lv += ((x >> 11) as f64 / (1_u64 << 53) as f64 - 0.5) * 0.1;
                let ts = 1_796_118_651_000 + second * 1000 + k as i64 * 10;
                b.push(
                    &t(&format!("tag/rtu1/ua{k}/in")),
                    &v(&format!("{lv:.3},{ts},")),
                    Instant::now(),
                );
            }
            let (payload, n) = b.take().unwrap();
            // PUBLISH at QoS 1: type byte, 2 length bytes, topic length and text, packet id.
            bytes += 1 + 2 + 2 + topic.len() + 2 + payload.len();
            values += n;
        }
        let per_value = bytes as f64 / values as f64;
        println!("{values} wandering values: {per_value:.2} bytes a value at the MQTT layer");
        assert!(per_value <= 12.0, "{per_value:.2}");
    }

    #[test]
    fn json_batch_is_an_array_of_topic_value_ts_quality() {
        let mut b = BatchPayload::new(PayloadFormat::JsonBatch);
        b.push(&t("tag/rtu1/ua12/in"), &v("231.123,1796118651026,"));
        b.push(&t("tag/rtu1/cb1/in"), &v("1,1796118651030,iv"));
        b.push(&t("we\"ird\\topic"), &v("nan,1,"));
        assert_eq!(
            String::from_utf8(b.finish()).unwrap(),
            r#"[{"topic":"tag/rtu1/ua12/in","value":231.123,"ts":1796118651026,"quality":1},{"topic":"tag/rtu1/cb1/in","value":1,"ts":1796118651030,"quality":0},{"topic":"we\"ird\\topic","value":null,"ts":1,"quality":1}]"#
        );
        assert_eq!(BatchPayload::new(PayloadFormat::JsonBatch).finish(), b"[]");
    }

    #[test]
    fn csv_batch_is_one_line_per_value() {
        let mut b = BatchPayload::new(PayloadFormat::CsvBatch);
        b.push(&t("tag/rtu1/ua12/in"), &v("231.123,1796118651026,"));
        b.push(&t("a,b"), &v("1,1796118651030,iv"));
        assert_eq!(
            String::from_utf8(b.finish()).unwrap(),
            "tag/rtu1/ua12/in,231.123,1796118651026,1\na,b,1,1796118651030,0\n"
        );
    }

    #[test]
    fn a_batch_is_due_when_full_or_batch_ms_after_its_first_value() {
        let t0 = Instant::now();
        let mut b = Batcher::new(PayloadFormat::CsvBatch, &settings(100, 3));
        assert_eq!((b.deadline(), b.take()), (None, None));
        b.push(&t("a"), &v("1,1,"), t0);
        b.push(&t("b"), &v("2,1,"), t0 + Duration::from_millis(50));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(100)));
        assert!(!b.is_full());
        b.push(&t("c"), &v("3,1,"), t0 + Duration::from_millis(60));
        assert!(b.is_full());
        let (payload, n) = b.take().unwrap();
        assert_eq!(
            (payload.as_slice(), n),
            (&b"a,1,1,1\nb,2,1,1\nc,3,1,1\n"[..], 3)
        );
        assert_eq!(b.deadline(), None, "a new batch starts empty");
        let later = t0 + Duration::from_millis(500);
        b.push(&t("a"), &v("4,1,"), later);
        assert_eq!(b.deadline(), Some(later + Duration::from_millis(100)));
    }

    #[test]
    fn a_batch_is_also_due_at_the_byte_limit() {
        let mut b = Batcher::new(PayloadFormat::JsonBatch, &settings(1000, 10_000));
        let topic = t(&"x".repeat(1000));
        let mut n = 0;
        while !b.is_full() {
            b.push(&topic, &v("1,1,"), Instant::now());
            n += 1;
        }
        assert!(n < 200 && n > 100, "{n}");
        let (payload, count) = b.take().unwrap();
        assert_eq!(count, n);
        assert!(payload.len() >= MAX_BATCH_BYTES);
        let parsed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), n);
    }
}
