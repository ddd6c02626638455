//! `fieldbridge tag get|set|watch`: read and write the tag bus.

use std::io::{BufRead, Write};

use anyhow::{bail, Context};
use tagbus::{FeedEvent, Origin, ReaderConfig, TagKey, TagValue, TagWriter, WriterConfig};

use crate::cli::{TagArgs, TagCommand};
use crate::exit::Exit;

/// Lines written per pipeline by `tag set -`.
const BULK_BATCH: usize = 1000;

pub fn run(args: TagArgs) -> anyhow::Result<Exit> {
    crate::logging::init(&args.common.debug);
    let url = super::redis_url(args.redis.redis_url.as_deref(), Some(&args.common.config));
    let rt = super::runtime()?;
    rt.block_on(async move {
        match args.command {
            TagCommand::Get { key } => get(&url, &key).await,
            TagCommand::Set {
                key,
                value,
                flags,
                ts,
            } if key == "-" => {
                if value.is_some() {
                    bail!("tag set - reads `KEY CSV` lines from stdin and takes no VALUE");
                }
                let _ = (flags, ts);
                set_bulk(&url).await
            }
            TagCommand::Set {
                key,
                value,
                flags,
                ts,
            } => {
                let value = value.context("tag set KEY VALUE: VALUE is missing")?;
                set_one(&url, &key, &value, &flags, ts).await
            }
            TagCommand::Watch { pattern, live } => watch(&url, &pattern, live).await,
        }
    })
}

async fn get(url: &str, key: &str) -> anyhow::Result<Exit> {
    let key: TagKey = key.parse()?;
    let stored = tagbus::read_stored(url, std::slice::from_ref(&key))
        .await
        .with_context(|| format!("reading from {url}"))?;
    let value = stored.into_iter().next().flatten();
    match value {
        None => {
            eprintln_safe(&format!("{key}: no value"));
            Ok(Exit::Failure)
        }
        Some(bytes) => {
            // Print what is stored, decoded when it is well formed.
            let text = match TagValue::from_bytes(&bytes) {
                Ok(v) => v.to_string(),
                Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
            };
            write_line(&text)?;
            Ok(Exit::Ok)
        }
    }
}

async fn set_one(
    url: &str,
    key: &str,
    value: &str,
    flags: &str,
    ts: Option<u64>,
) -> anyhow::Result<Exit> {
    let key: TagKey = key.parse()?;
    let value = TagValue {
        value: value.parse()?,
        timestamp_ms: ts.unwrap_or_else(tagbus::now_ms),
        flags: flags.parse()?,
    };
    let mut writer = TagWriter::new(&WriterConfig::new(url))?;
    writer
        .write(&key, &value)
        .await
        .with_context(|| format!("writing to {url}"))?;
    Ok(Exit::Ok)
}

async fn set_bulk(url: &str) -> anyhow::Result<Exit> {
    let mut writer = TagWriter::new(&WriterConfig::new(url))?;
    let stdin = std::io::stdin();
    let mut batch = Vec::with_capacity(BULK_BATCH);
    let (mut written, mut bad) = (0u64, 0u64);
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Ok(pair) => batch.push(pair),
            Err(e) => {
                bad = bad.saturating_add(1);
                eprintln_safe(&format!("stdin line {}: {e}", n.saturating_add(1)));
            }
        }
        if batch.len() >= BULK_BATCH {
            writer.write_batch(&batch).await?;
            written = written.saturating_add(batch.len() as u64);
            batch.clear();
        }
    }
    writer.write_batch(&batch).await?;
    written = written.saturating_add(batch.len() as u64);
    eprintln_safe(&format!("{written} values written, {bad} lines refused"));
    Ok(if bad == 0 { Exit::Ok } else { Exit::Failure })
}

/// `KEY CSV`, e.g. `tag/rtu1/cb1/in 1,1732280000000,`.
fn parse_line(line: &str) -> anyhow::Result<(TagKey, TagValue)> {
    let (key, csv) = line
        .split_once(char::is_whitespace)
        .context("expected `KEY CSV`")?;
    Ok((key.parse()?, csv.trim().parse()?))
}

async fn watch(url: &str, pattern: &str, live_only: bool) -> anyhow::Result<Exit> {
    let mut feed = tagbus::spawn_reader(
        ReaderConfig {
            redis_url: url.to_owned(),
            pattern: pattern.to_owned(),
        },
        1024,
    )?;
    loop {
        tokio::select! {
            event = feed.recv() => match event {
                Some(FeedEvent::Value { key, value, origin }) => {
                    if live_only && origin == Origin::Snapshot {
                        continue;
                    }
                    if write_line(&format!("{key} {value}")).is_err() {
                        return Ok(Exit::Ok); // stdout closed (e.g. piped to head)
                    }
                }
                Some(FeedEvent::SnapshotComplete { .. }) => {}
                Some(FeedEvent::Disconnected) => eprintln_safe("redis connection lost; reconnecting"),
                None => return Ok(Exit::Failure),
            },
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Ok),
        }
    }
}

fn write_line(s: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

fn eprintln_safe(s: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(s.as_bytes());
    let _ = err.write_all(b"\n");
}
