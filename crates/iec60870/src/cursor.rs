//! Panic-free byte reader and writer used by every decoder and encoder.

use thiserror::Error;

/// The input ended before a field could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unexpected end of input")]
pub struct EndOfInput;

/// A reader over a byte slice; every read returns an error instead of panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Creates a reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// Number of unread bytes.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads one byte.
    pub fn read_u8(&mut self) -> Result<u8, EndOfInput> {
        let (first, rest) = self.rest.split_first().ok_or(EndOfInput)?;
        self.rest = rest;
        Ok(*first)
    }

    /// Reads `N` bytes.
    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], EndOfInput> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(EndOfInput)?;
        self.rest = rest;
        Ok(*head)
    }

    /// Reads a little-endian u16.
    pub fn read_u16_le(&mut self) -> Result<u16, EndOfInput> {
        self.read_array::<2>().map(u16::from_le_bytes)
    }

    /// Reads a little-endian i16.
    pub fn read_i16_le(&mut self) -> Result<i16, EndOfInput> {
        self.read_array::<2>().map(i16::from_le_bytes)
    }

    /// Reads a little-endian u24 into a u32.
    pub fn read_u24_le(&mut self) -> Result<u32, EndOfInput> {
        let [a, b, c] = self.read_array::<3>()?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    /// Reads a little-endian u32.
    pub fn read_u32_le(&mut self) -> Result<u32, EndOfInput> {
        self.read_array::<4>().map(u32::from_le_bytes)
    }

    /// Reads a little-endian i32.
    pub fn read_i32_le(&mut self) -> Result<i32, EndOfInput> {
        self.read_array::<4>().map(i32::from_le_bytes)
    }

    /// Reads a little-endian IEEE 754 f32.
    pub fn read_f32_le(&mut self) -> Result<f32, EndOfInput> {
        self.read_array::<4>().map(f32::from_le_bytes)
    }

    /// Reads `n` bytes as a slice.
    pub fn read_slice(&mut self, n: usize) -> Result<&'a [u8], EndOfInput> {
        if n > self.rest.len() {
            return Err(EndOfInput);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
}

/// An append-only writer into a `Vec<u8>`.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Creates an empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Appends a little-endian u16.
    pub fn u16_le(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    /// Appends a little-endian i16.
    pub fn i16_le(&mut self, v: i16) {
        self.bytes(&v.to_le_bytes());
    }

    /// Appends the low three bytes of `v`, little-endian.
    pub fn u24_le(&mut self, v: u32) {
        let [a, b, c, _] = v.to_le_bytes();
        self.bytes(&[a, b, c]);
    }

    /// Appends a little-endian u32.
    pub fn u32_le(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    /// Appends a little-endian i32.
    pub fn i32_le(&mut self, v: i32) {
        self.bytes(&v.to_le_bytes());
    }

    /// Appends a little-endian f32.
    pub fn f32_le(&mut self, v: f32) {
        self.bytes(&v.to_le_bytes());
    }

    /// Returns the written bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}
