//! One TCP connection driven by a [`Link`]: framing, logging, writes, timers.

use crate::apci::{parse_frame, FrameError};
use crate::asdu::AsduError;
use crate::decode::{log_frame, DecodeLevel};
use crate::link::{Link, LinkError};
use crate::transport::BoxLinkStream;
use crate::types::AsduSizes;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Why a connection ended.
#[derive(Debug, Error)]
pub(crate) enum SessionError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("link error: {0}")]
    Link(#[from] LinkError),
    #[error("framing error: {0}")]
    Frame(#[from] FrameError),
    #[error("connection closed by peer")]
    Closed,
}

pub(crate) const READ_CHUNK: usize = 1024;

pub(crate) struct Session {
    pub stream: BoxLinkStream,
    pub link: Link,
    rx: Vec<u8>,
    sizes: AsduSizes,
    level: DecodeLevel,
    bad_asdus: WarnLimit,
}

/// Undecodable ASDUs are logged at most once per this interval (the first at once).
pub(crate) const BAD_ASDU_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The rate limit of a repeated warning: the first occurrence is logged, then at most one
/// per interval, saying how many were not logged before it.
#[derive(Debug, Default)]
pub(crate) struct WarnLimit {
    last: Option<Instant>,
    not_logged: u64,
}

impl WarnLimit {
    /// Counts one occurrence at `now`: `Some(n)` when it is to be logged (`n` occurrences
    /// were not logged since the last line), `None` when it is only counted.
    pub(crate) fn note(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < interval => {
                self.not_logged = self.not_logged.saturating_add(1);
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.not_logged))
            }
        }
    }
}

pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Session {
    pub fn new(stream: BoxLinkStream, link: Link, sizes: AsduSizes, level: DecodeLevel) -> Self {
        Self {
            stream,
            link,
            rx: Vec::with_capacity(READ_CHUNK),
            sizes,
            level,
            bad_asdus: WarnLimit::default(),
        }
    }

    /// Logs an ASDU that cannot be decoded (it is ignored), rate-limited: a peer sending
    /// hundreds of them gets one line per [`BAD_ASDU_LOG_INTERVAL`], not hundreds.
    pub fn bad_asdu(&mut self, error: &AsduError) {
        if let Some(not_logged) = self.bad_asdus.note(now(), BAD_ASDU_LOG_INTERVAL) {
            tracing::warn!(error = %error, not_logged_before = not_logged,
                "undecodable ASDU ignored (at most one line per {} s)", BAD_ASDU_LOG_INTERVAL.as_secs());
        }
    }

    /// The instant the link's timers need attention (far in the future when none is armed).
    pub fn deadline(&self) -> tokio::time::Instant {
        match self.link.next_deadline() {
            Some(d) => tokio::time::Instant::from_std(d),
            None => tokio::time::Instant::now()
                .checked_add(Duration::from_secs(3600))
                .unwrap_or_else(tokio::time::Instant::now),
        }
    }

    /// Writes every frame the link has queued.
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        while let Some(frame) = self.link.poll_transmit() {
            let bytes = frame.encode()?;
            log_frame(self.level, true, &bytes, &self.sizes);
            self.stream.write_all(&bytes).await?;
        }
        // a TLS stream holds records until flushed; a TCP stream's flush does nothing
        self.stream.flush().await?;
        Ok(())
    }

    /// Feeds octets read from the socket (`n == 0` means EOF) to the link.
    pub fn on_read(&mut self, data: &[u8]) -> Result<(), SessionError> {
        if data.is_empty() {
            return Err(SessionError::Closed);
        }
        self.rx.extend_from_slice(data);
        let now = now();
        while let Some((frame, used)) = parse_frame(&self.rx)? {
            if let Some(raw) = self.rx.get(..used) {
                log_frame(self.level, false, raw, &self.sizes);
            }
            self.rx.drain(..used.min(self.rx.len()));
            self.link.handle_frame(frame, now)?;
        }
        Ok(())
    }

    pub fn on_timeout(&mut self) -> Result<(), SessionError> {
        self.link.handle_timeout(now())?;
        Ok(())
    }
}

/// Reads once from the stream (cancel-safe).
pub(crate) async fn read_some(
    stream: &mut (impl AsyncRead + Unpin + ?Sized),
    buf: &mut [u8; READ_CHUNK],
) -> std::io::Result<usize> {
    stream.read(buf).await
}

#[cfg(test)]
mod warn_limit_tests {
    use super::*;

    #[test]
    fn first_logged_then_one_per_interval_with_the_count() {
        let t0 = Instant::now();
        let at = |ms: u64| t0.checked_add(Duration::from_millis(ms)).unwrap_or(t0);
        let every = Duration::from_secs(10);
        let mut limit = WarnLimit::default();
        assert_eq!(limit.note(at(0), every), Some(0));
        let logged: Vec<Option<u64>> = (1..400).map(|i| limit.note(at(i), every)).collect();
        assert!(logged.iter().all(Option::is_none));
        assert_eq!(limit.note(at(9_999), every), None);
        assert_eq!(limit.note(at(10_000), every), Some(400));
        assert_eq!(limit.note(at(10_001), every), None);
        assert_eq!(limit.note(at(25_000), every), Some(1));
    }
}
