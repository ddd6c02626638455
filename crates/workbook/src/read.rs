//! Reading a workbook (calamine) into config rows, and validating it with cell references.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::io::{Cursor, Read, Seek};
use std::path::Path;

use calamine::{Data, Ods, Range, Reader, Xlsx};
use serde_json::Value;

use config::{
    device_columns, signal_columns, Protocol, RawConfig, Row, Section, Validated,
    DEVICE_COMMON_COLUMNS, SIGNAL_COMMON_COLUMNS,
};

use crate::canon::number_from_f64;
use crate::location::{column_letter, CellMap, Issue, Location, SettingsMap, SheetMap};
use crate::{DEVICES_SHEET, SETTINGS_SHEET, SIGNALS_SHEET};

/// The largest workbook file read (a 5,000-signal workbook is about 200 kB).
pub const MAX_WORKBOOK_BYTES: u64 = 64 * 1024 * 1024;

/// The largest unpacked size (all parts of the zip, as its directory declares them) read: a
/// gateway has 64-256 MB of RAM, and a 20,000-signal workbook unpacks to about 8 MB.
pub const MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024;

/// The message validation gives an empty required cell.
const REQUIRED_EMPTY: &str = "required, but empty";

/// A workbook file format the reader takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Office Open XML (`.xlsx`, `.xlsm`).
    Xlsx,
    /// OpenDocument spreadsheet (`.ods`).
    Ods,
}

impl Format {
    /// `.xlsx` or `.ods`.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Xlsx => ".xlsx",
            Format::Ods => ".ods",
        }
    }

    /// The format of a file by its content (both are zip archives; an ODS names its mimetype
    /// first). `origin` names the file in errors.
    pub fn detect(bytes: &[u8], origin: &str) -> Result<Self, ReadError> {
        let not_a_workbook = |message: &str| ReadError::NotAWorkbook {
            origin: origin.to_owned(),
            message: message.to_owned(),
        };
        if bytes.is_empty() {
            return Err(not_a_workbook("the file is empty"));
        }
        if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
            return Err(ReadError::Unsupported {
                origin: origin.to_owned(),
                message: "a legacy .xls or password-protected workbook; save it as .xlsx (without a password)"
                    .into(),
            });
        }
        if !bytes.starts_with(b"PK\x03\x04") {
            return Err(not_a_workbook(
                "not an .xlsx or .ods workbook: the file is not a zip archive (a CSV or text file with a workbook's name?)",
            ));
        }
        let head = bytes.get(..bytes.len().min(128)).unwrap_or(&[]);
        let ods = head
            .windows(b"opendocument.spreadsheet".len())
            .any(|w| w == b"opendocument.spreadsheet");
        Ok(if ods { Format::Ods } else { Format::Xlsx })
    }
}

/// Why a workbook could not be read at all (one line, naming the file).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// (The I/O error is part of the message, not a `source`, so a chain prints it once.)
    #[error("{origin}: {error}")]
    Io {
        origin: String,
        error: std::io::Error,
    },
    #[error("{origin}: {message}")]
    TooLarge { origin: String, message: String },
    #[error("{origin}: {message}")]
    Unsupported { origin: String, message: String },
    /// Not a workbook, or a damaged one (truncated, not a zip, ...).
    #[error("{origin}: {message}")]
    NotAWorkbook { origin: String, message: String },
    /// `Devices` or `Signals` is missing.
    #[error("{origin}: {message}")]
    MissingSheet { origin: String, message: String },
    /// A sheet that is there could not be read.
    #[error("{origin}: sheet {sheet}: {message}")]
    Sheet {
        origin: String,
        sheet: String,
        message: String,
    },
}

/// A workbook read into config rows, with where each row and column came from and the
/// problems found in the cells themselves (before validation).
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub raw: RawConfig,
    pub map: CellMap,
    /// Error cells, date cells, duplicate headers, a broken Settings sheet.
    pub errors: Vec<Issue>,
    /// Unknown columns, values under a column with no header.
    pub warnings: Vec<Issue>,
    /// (section, row index, column) of every cell with an error (validation's own
    /// complaint about the same cell is left out).
    bad_cells: BTreeSet<(Section, usize, String)>,
}

/// An imported workbook, validated: every error and warning at its cell.
#[derive(Debug, Clone)]
pub struct Report {
    pub validated: Validated,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

impl Report {
    /// No errors at all: the config may be written.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Reads the workbook at `path` (`.xlsx`, `.xlsm` or `.ods`, told apart by content).
pub fn read_workbook(path: &Path) -> Result<Imported, ReadError> {
    let origin = path.display().to_string();
    let io = |error| ReadError::Io {
        origin: origin.clone(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_WORKBOOK_BYTES {
        return Err(ReadError::TooLarge {
            origin,
            message: format!(
                "{len} bytes; a workbook of at most {MAX_WORKBOOK_BYTES} bytes is read"
            ),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_WORKBOOK_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    read_workbook_bytes(bytes, &origin)
}

/// Reads a workbook from its bytes; `origin` names it in errors.
pub fn read_workbook_bytes(bytes: Vec<u8>, origin: &str) -> Result<Imported, ReadError> {
    let format = Format::detect(&bytes, origin)?;
    check_unpacked_size(&bytes, format, origin)?;
    let guarded = match format {
        Format::Xlsx => {
            crate::guard::check_xlsx(&bytes, &[DEVICES_SHEET, SIGNALS_SHEET, SETTINGS_SHEET])
        }
        Format::Ods => crate::guard::check_ods(&bytes),
    };
    guarded.map_err(|message| ReadError::NotAWorkbook {
        origin: origin.to_owned(),
        message: format!("not a readable {} workbook: {message}", format.extension()),
    })?;
    let damaged = |what: &str, e: &dyn Display| ReadError::NotAWorkbook {
        origin: origin.to_owned(),
        message: format!("not a readable {what} workbook: {e}"),
    };
    match format {
        Format::Xlsx => {
            let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
                .map_err(|e| damaged(".xlsx", &e))?;
            read_sheets(&mut wb, origin)
        }
        Format::Ods => {
            let mut wb: Ods<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
                .map_err(|e| damaged(".ods", &e))?;
            read_sheets(&mut wb, origin)
        }
    }
}

/// Refuses a zip whose parts unpack to more than [`MAX_UNPACKED_BYTES`] (as declared by
/// its central directory) before calamine inflates anything.
fn check_unpacked_size(bytes: &[u8], format: Format, origin: &str) -> Result<(), ReadError> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| ReadError::NotAWorkbook {
            origin: origin.to_owned(),
            message: format!(
                "not a readable {} workbook: a damaged zip archive ({e})",
                format.extension()
            ),
        })?;
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        if let Ok(file) = zip.by_index_raw(i) {
            total = total.saturating_add(file.size());
        }
    }
    if total > MAX_UNPACKED_BYTES {
        return Err(ReadError::TooLarge {
            origin: origin.to_owned(),
            message: format!("unpacks to {total} bytes; at most {MAX_UNPACKED_BYTES} are read"),
        });
    }
    Ok(())
}

fn find_sheet(names: &[String], wanted: &str) -> Option<String> {
    names
        .iter()
        .find(|n| n.trim().eq_ignore_ascii_case(wanted))
        .cloned()
}

fn read_sheets<RS, R>(wb: &mut R, origin: &str) -> Result<Imported, ReadError>
where
    RS: Read + Seek,
    R: Reader<RS>,
    R::Error: Display,
{
    let names = wb.sheet_names();
    let devices = find_sheet(&names, DEVICES_SHEET);
    let signals = find_sheet(&names, SIGNALS_SHEET);
    let (Some(devices), Some(signals)) = (devices.clone(), signals.clone()) else {
        let missing: Vec<&str> = [(DEVICES_SHEET, &devices), (SIGNALS_SHEET, &signals)]
            .into_iter()
            .filter(|(_, found)| found.is_none())
            .map(|(name, _)| name)
            .collect();
        let has = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        return Err(ReadError::MissingSheet {
            origin: origin.to_owned(),
            message: format!(
                "no sheet named {} (the workbook's sheets: {has})",
                missing.join(" or ")
            ),
        });
    };
    let mut range = |name: &str| {
        wb.worksheet_range(name).map_err(|e| ReadError::Sheet {
            origin: origin.to_owned(),
            sheet: name.to_owned(),
            message: e.to_string(),
        })
    };
    let devices_range = range(&devices)?;
    let signals_range = range(&signals)?;
    let settings = match find_sheet(&names, SETTINGS_SHEET) {
        Some(name) => Some((range(&name)?, name)),
        None => None,
    };

    let mut imp = Imported {
        raw: RawConfig::default(),
        map: CellMap::default(),
        errors: Vec::new(),
        warnings: Vec::new(),
        bad_cells: BTreeSet::new(),
    };
    let (rows, map) = imp.read_rows(&devices_range, &devices, Section::Devices);
    imp.raw.devices = rows;
    imp.map.devices = map;
    let (rows, map) = imp.read_rows(&signals_range, &signals, Section::Signals);
    imp.raw.signals = rows;
    imp.map.signals = map;
    if let Some((range, name)) = settings {
        imp.read_settings(&range, &name);
    }
    Ok(imp)
}

/// Every column a sheet's rows may have (common ones first, then each protocol's).
fn known_columns(section: Section) -> Vec<&'static str> {
    type ColumnsOf = fn(Protocol) -> &'static [&'static str];
    let (common, of): (&[&'static str], ColumnsOf) = match section {
        Section::Devices => (DEVICE_COMMON_COLUMNS, device_columns),
        _ => (SIGNAL_COMMON_COLUMNS, signal_columns),
    };
    let mut all: Vec<&'static str> = common.to_vec();
    for p in Protocol::ALL {
        for c in of(p) {
            if !all.contains(c) {
                all.push(c);
            }
        }
    }
    all
}

/// The JSON value of a cell: Ok(None) for an empty one, Err(message) for one that cannot
/// be a config value.
fn cell_value(cell: &Data) -> Result<Option<Value>, String> {
    match cell {
        Data::Empty => Ok(None),
        Data::String(s) if s.trim().is_empty() => Ok(None),
        Data::String(s) => Ok(Some(Value::String(s.clone()))),
        Data::Int(i) => Ok(Some(Value::from(*i))),
        Data::Float(f) => number_from_f64(*f)
            .map(Some)
            .ok_or_else(|| format!("{f} is not a number a config can hold")),
        Data::Bool(b) => Ok(Some(Value::Bool(*b))),
        Data::Error(e) => Err(format!("the cell holds the spreadsheet error {e}")),
        Data::DateTime(_) | Data::DateTimeIso(_) | Data::DurationIso(_) => Err(
            "a date or time cell; expected text or a number (format the cell as General or Text)"
                .into(),
        ),
    }
}

/// A header cell as text.
fn header_text(cell: &Data) -> String {
    match cell {
        Data::String(s) => s.trim().to_owned(),
        Data::Empty => String::new(),
        other => match cell_value(other) {
            Ok(Some(Value::String(s))) => s.trim().to_owned(),
            Ok(Some(v)) => v.to_string(),
            _ => other.to_string().trim().to_owned(),
        },
    }
}

enum Header {
    Column(String),
    Blank,
    Duplicate,
}

/// 0-based (row, col) of the cell at (i, j) of a range starting at `start`.
fn at(start: (u32, u32), i: usize, j: usize) -> (u32, u32) {
    let add = |base: u32, k: usize| {
        u32::try_from(k)
            .ok()
            .and_then(|k| base.checked_add(k))
            .unwrap_or(u32::MAX)
    };
    (add(start.0, i), add(start.1, j))
}

fn issue(sheet: &str, row0: u32, col: Option<u32>, column: Option<&str>, message: String) -> Issue {
    Issue {
        location: Location {
            sheet: sheet.to_owned(),
            row: Some(row0.saturating_add(1)),
            col,
            column: column.map(str::to_owned),
        },
        message,
    }
}

impl Imported {
    /// Reads the rows of `Devices` or `Signals`: header = first non-empty row.
    fn read_rows(
        &mut self,
        range: &Range<Data>,
        sheet: &str,
        section: Section,
    ) -> (Vec<Row>, SheetMap) {
        let mut map = SheetMap::new(sheet);
        let mut rows = Vec::new();
        let Some(start) = range.start() else {
            return (rows, map);
        };
        let known = known_columns(section);
        let mut lines = range.rows();
        let Some(header_cells) = lines.next() else {
            return (rows, map);
        };
        map.header_row = start.0.saturating_add(1);
        let mut header = Vec::with_capacity(header_cells.len());
        for (j, cell) in header_cells.iter().enumerate() {
            let (r, c) = at(start, 0, j);
            let text = header_text(cell);
            if text.is_empty() {
                header.push(Header::Blank);
                continue;
            }
            let name = known
                .iter()
                .find(|k| k.eq_ignore_ascii_case(&text))
                .map_or(text, |k| (*k).to_owned());
            if let Some(first) = map.columns.get(&name) {
                self.errors.push(issue(
                    sheet,
                    r,
                    Some(c),
                    Some(&name),
                    format!(
                        "duplicate column (also {}{}); this one is ignored",
                        column_letter(*first),
                        map.header_row
                    ),
                ));
                header.push(Header::Duplicate);
                continue;
            }
            if !known.contains(&name.as_str()) {
                self.warnings.push(issue(
                    sheet,
                    r,
                    Some(c),
                    Some(&name),
                    "unknown column, ignored".into(),
                ));
            }
            map.columns.insert(name.clone(), c);
            header.push(Header::Column(name));
        }

        let mut warned_blank = BTreeSet::new();
        for (i, cells) in lines.enumerate() {
            let i = i.saturating_add(1);
            let mut row = Row::new();
            let mut bad = Vec::new();
            for (j, cell) in cells.iter().enumerate() {
                let (r, c) = at(start, i, j);
                match header.get(j) {
                    Some(Header::Column(name)) => match cell_value(cell) {
                        Ok(None) => {}
                        Ok(Some(v)) => {
                            row.insert(name.clone(), v);
                        }
                        Err(message) => bad.push(issue(sheet, r, Some(c), Some(name), message)),
                    },
                    Some(Header::Duplicate) => {}
                    Some(Header::Blank) | None => {
                        if !matches!(cell_value(cell), Ok(None)) && warned_blank.insert(c) {
                            self.warnings.push(issue(
                                sheet,
                                r,
                                Some(c),
                                None,
                                format!(
                                    "a value in a column with no header (column {}); the column is ignored",
                                    column_letter(c)
                                ),
                            ));
                        }
                    }
                }
            }
            if row.is_empty() && bad.is_empty() {
                continue;
            }
            let index = rows.len();
            map.rows.push(at(start, i, 0).0.saturating_add(1));
            for b in bad {
                if let Some(column) = &b.location.column {
                    self.bad_cells.insert((section, index, column.clone()));
                }
                self.errors.push(b);
            }
            rows.push(row);
        }
        (rows, map)
    }

    /// Reads the optional `Settings` sheet: header `key | value`, a row per setting.
    fn read_settings(&mut self, range: &Range<Data>, sheet: &str) {
        let mut settings = SettingsMap {
            name: sheet.to_owned(),
            value_col: 1,
            rows: BTreeMap::new(),
        };
        let Some(start) = range.start() else {
            self.map.settings = Some(settings);
            return;
        };
        let mut lines = range.rows();
        let header: Vec<String> = lines
            .next()
            .map(|cells| cells.iter().map(header_text).collect())
            .unwrap_or_default();
        let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let (Some(key_j), Some(value_j)) = (find("key"), find("value")) else {
            for (name, j) in [("key", find("key")), ("value", find("value"))] {
                if j.is_none() {
                    self.errors.push(issue(
                        sheet,
                        start.0,
                        None,
                        Some(name),
                        "required column is missing from the header row (Settings has columns key and value)"
                            .into(),
                    ));
                }
            }
            self.map.settings = Some(settings);
            return;
        };
        settings.value_col = at(start, 0, value_j).1;
        for (i, cells) in lines.enumerate() {
            let i = i.saturating_add(1);
            let (r, key_c) = at(start, i, key_j);
            let value_c = at(start, i, value_j).1;
            let key = cells.get(key_j).map(header_text).unwrap_or_default();
            let value = match cells.get(value_j).map(cell_value).unwrap_or(Ok(None)) {
                Ok(v) => v,
                Err(message) => {
                    self.errors
                        .push(issue(sheet, r, Some(value_c), Some(&key), message));
                    continue;
                }
            };
            if key.is_empty() {
                if value.is_some() {
                    self.errors.push(issue(
                        sheet,
                        r,
                        Some(key_c),
                        None,
                        "a value without a key".into(),
                    ));
                }
                continue;
            }
            let key = ["redis_url", "stream_max_len"]
                .into_iter()
                .find(|k| k.eq_ignore_ascii_case(&key))
                .map_or(key, str::to_owned);
            if let Some(first) = settings.rows.get(&key) {
                self.errors.push(issue(
                    sheet,
                    r,
                    Some(key_c),
                    Some(&key),
                    format!("duplicate setting (also row {first}); this one is ignored"),
                ));
                continue;
            }
            if ["devices", "signals"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&key))
            {
                self.errors.push(issue(
                    sheet,
                    r,
                    Some(key_c),
                    Some(&key),
                    "not a setting: devices and signals are the sheets Devices and Signals".into(),
                ));
                continue;
            }
            settings.rows.insert(key.clone(), r.saturating_add(1));
            let Some(value) = value else { continue };
            match key.as_str() {
                "redis_url" => match value {
                    Value::String(s) => self.raw.redis_url = Some(s),
                    other => self.errors.push(issue(
                        sheet,
                        r,
                        Some(value_c),
                        Some(&key),
                        format!("expected text (a redis:// URL), got {other}"),
                    )),
                },
                "stream_max_len" => self.raw.stream_max_len = Some(value),
                _ => {
                    self.raw.unknown.insert(key, value);
                }
            }
        }
        self.map.settings = Some(settings);
    }

    /// Validates the rows and renders every error and warning at its cell.
    pub fn check(&self) -> Report {
        let validated = config::validate(&self.raw);
        let mut errors = Vec::new();
        let mut missing: BTreeMap<(Section, String), Vec<u32>> = BTreeMap::new();
        let devices_lack_alias = !self.map.devices.has_column("device_alias");
        for e in &validated.errors {
            let (section, index, column) = (e.path.section, e.path.index, e.path.column.as_deref());
            if let (Some(sheet), Some(column)) = (self.map.sheet(section), column) {
                if let Some(i) = index {
                    if self.bad_cells.contains(&(section, i, column.to_owned())) {
                        continue;
                    }
                }
                if !sheet.has_column(column) && e.message == REQUIRED_EMPTY {
                    let row = index.and_then(|i| sheet.rows.get(i).copied());
                    missing
                        .entry((section, column.to_owned()))
                        .or_default()
                        .extend(row);
                    continue;
                }
                if section == Section::Signals
                    && devices_lack_alias
                    && matches!(column, "device_alias" | "source_device_alias")
                    && e.message.starts_with("no device ")
                {
                    continue;
                }
            }
            errors.push(Issue {
                location: self.map.locate(&e.path),
                message: self.map.rewrite_refs(&e.message),
            });
        }
        let mut header_errors: Vec<Issue> = missing
            .into_iter()
            .filter_map(|((section, column), rows)| {
                let sheet = self.map.sheet(section)?;
                Some(Issue {
                    location: sheet.header(&column),
                    message: format!(
                        "required column is missing from the header row ({})",
                        rows_text(&rows)
                    ),
                })
            })
            .collect();
        header_errors.extend(self.errors.iter().cloned());
        header_errors.append(&mut errors);

        let mut warnings = self.warnings.clone();
        for w in &validated.warnings {
            let column = w.path.column.as_deref().unwrap_or("");
            // Unknown columns were reported once, at their header.
            if let Some(sheet) = self.map.sheet(w.path.section) {
                if !known_columns(w.path.section).contains(&column) && sheet.has_column(column) {
                    continue;
                }
            }
            warnings.push(Issue {
                location: self.map.locate(&w.path),
                message: self.map.rewrite_refs(&w.message),
            });
        }
        Report {
            validated,
            errors: header_errors,
            warnings,
        }
    }
}

/// `rows 3, 4, 9` (at most ten, then `and N more`).
fn rows_text(rows: &[u32]) -> String {
    match rows {
        [] => "no rows".into(),
        [one] => format!("needed by row {one}"),
        _ => {
            let shown: Vec<String> = rows.iter().take(10).map(u32::to_string).collect();
            let more = rows.len().saturating_sub(shown.len());
            let mut s = format!("needed by rows {}", shown.join(", "));
            if more > 0 {
                s.push_str(&format!(" and {more} more"));
            }
            s
        }
    }
}
