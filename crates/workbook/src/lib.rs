//! The fieldbridge workbook: the Excel file an engineer edits, mapped onto the configuration
//! rows of [`config::RawConfig`] and back (the columns: docs/config-columns.md).
//!
//! - [`read_workbook`] / [`read_workbook_bytes`] read a `.xlsx` (or `.xlsm`) with calamine,
//!   or an OpenDocument `.ods`, into an [`Imported`]: the raw config plus a [`CellMap`] that
//!   remembers, for every row, its spreadsheet row number and, for every column, its letter.
//! - [`Imported::check`] validates with [`config::validate`] and renders every error and
//!   warning at its cell: `Signals!F17 (source_device_alias): no device "rtu9" in Devices`.
//! - [`export`] writes a config as a workbook with rust_xlsxwriter;
//!   `import(export(c)) == canonical(c)` (see [`canonical`]).
//! - [`diff`] tells what an import would change; [`write_file_atomic`] writes a file
//!   atomically (temporary file, fsync, rename) with mode 0600.
//!
//! Decisions:
//! - **Sheets.** `Devices` and `Signals` are required (matched case-insensitively); their
//!   header is the first non-empty row. The optional `Settings` sheet has a header row
//!   `key | value` and one row per top-level setting (`redis_url`, `stream_max_len`; other
//!   keys are kept and reported as unknown settings). Further columns of `Settings` (e.g. a
//!   description) and further sheets are ignored, so engineers may keep notes there.
//! - **Headers.** Trimmed; a header that matches a known column case-insensitively is taken
//!   in the known spelling (`Device_Alias` -> `device_alias`). A duplicate header is an error;
//!   a header nobody knows is one warning at the header cell; a value under an empty header
//!   cell is a warning.
//! - **Cells.** Empty cells and whitespace-only text are absent (the column's default
//!   applies); a row with no values is skipped. Integral floats (Excel stores 1883 as 1883.0)
//!   become JSON integers; text stays text exactly as typed (validation reads `"1883"`,
//!   `TRUE`, `yes` leniently). An error cell (`#DIV/0!`, `#REF!`, ...) or a date/time cell
//!   is an error at that cell.
//! - **Missing columns.** A required column absent from the header is one error at the
//!   header row (`Devices!1:1 (asdu_address): required column is missing from the header
//!   row (rows 3, 4)`), not one per row; when `Devices` has no `device_alias` column the
//!   consequent "no device" errors of every signal are left out.
//! - **Row references in messages.** `(also devices[2])` is rewritten to `(also Devices
//!   row 4)`, and `no device "rtu9" in devices` to `... in Devices`.
//! - **Formats.** `.xlsx`/`.xlsm` and `.ods` only; `.xls`/`.xlsb` are refused with a hint
//!   to save as `.xlsx` (keeps the legacy readers out of the binary). Files over
//!   [`MAX_WORKBOOK_BYTES`], or whose zip declares more than [`MAX_UNPACKED_BYTES`]
//!   unpacked, are refused (a gateway has little RAM); so is a sheet whose values span more
//!   than [`MAX_SHEET_CELLS`] cells (calamine stores cells densely), and references that
//!   would overflow calamine's parser (see the `guard` module).
//! - **Export.** Sheets `Devices`, `Signals`, `Settings`; header row bold and frozen; columns:
//!   the common ones first (always present), then each protocol's columns in its list order
//!   (only those used), then any other used column in name order. Numbers are written as
//!   numbers, booleans as booleans, text as text; arrays/objects (not expected in a config)
//!   as their JSON text.

mod atomic;
mod canon;
mod diff;
mod export;
mod guard;
mod location;
mod read;

pub use atomic::write_file_atomic;
pub use canon::{canonical, canonical_value};
pub use diff::{diff, Change, ChangeKind, Diff};
pub use export::{device_header, export, signal_header, ExportError};
pub use guard::MAX_SHEET_CELLS;
pub use location::{column_letter, CellMap, Issue, Location, SheetMap};
pub use read::{
    read_workbook, read_workbook_bytes, Format, Imported, ReadError, Report, MAX_WORKBOOK_BYTES,
};

/// Columns whose cells are secrets: masked whenever a config or a change is shown.
pub const SECRET_COLUMNS: &[&str] = &["password", "last_will_password", "client_key_password"];

/// The sheet of the devices.
pub const DEVICES_SHEET: &str = "Devices";
/// The sheet of the signals.
pub const SIGNALS_SHEET: &str = "Signals";
/// The optional sheet of the top-level settings.
pub const SETTINGS_SHEET: &str = "Settings";
