//! One TCP connection driven by a [`Link`]: framing, logging, writes, timers.

use crate::apci::{parse_frame, FrameError};
use crate::decode::{log_frame, DecodeLevel};
use crate::link::{Link, LinkError};
use crate::types::AsduSizes;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    pub stream: TcpStream,
    pub link: Link,
    rx: Vec<u8>,
    sizes: AsduSizes,
    level: DecodeLevel,
}

pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Session {
    pub fn new(stream: TcpStream, link: Link, sizes: AsduSizes, level: DecodeLevel) -> Self {
        Self {
            stream,
            link,
            rx: Vec::with_capacity(READ_CHUNK),
            sizes,
            level,
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
    stream: &mut TcpStream,
    buf: &mut [u8; READ_CHUNK],
) -> std::io::Result<usize> {
    stream.read(buf).await
}
