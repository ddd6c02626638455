//! Writing a config as a workbook (rust_xlsxwriter).

use std::collections::BTreeSet;

use rust_xlsxwriter::{
    DocProperties, ExcelDateTime, Format as CellFormat, Workbook, Worksheet, XlsxError,
};
use serde_json::Value;

use config::{
    device_columns, signal_columns, Protocol, RawConfig, Row, DEVICE_COMMON_COLUMNS,
    SIGNAL_COMMON_COLUMNS,
};

use crate::canon::canonical_value;
use crate::location::column_letter;
use crate::{DEVICES_SHEET, SETTINGS_SHEET, SIGNALS_SHEET};

/// Why a workbook could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A cell the format cannot hold (e.g. text over 32,767 characters), or more rows or
    /// columns than a sheet has.
    #[error("{sheet}!{cell}: {error}")]
    Cell {
        sheet: &'static str,
        cell: String,
        error: XlsxError,
    },
    #[error("writing the workbook: {0}")]
    Workbook(XlsxError),
}

// Not `#[from]`: the error is in the message already, a `source` would print it twice.
impl From<XlsxError> for ExportError {
    fn from(e: XlsxError) -> Self {
        ExportError::Workbook(e)
    }
}

/// The header of a sheet: the common columns (always), then each protocol's columns in its
/// list order, then any other column, each only if some row uses it.
fn header(
    rows: &[Row],
    common: &[&'static str],
    of: fn(Protocol) -> &'static [&'static str],
) -> Vec<String> {
    let used: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.iter())
        .filter(|(_, v)| canonical_value(v).is_some())
        .map(|(k, _)| k)
        .collect();
    let mut columns: Vec<String> = common.iter().map(|c| (*c).to_owned()).collect();
    for p in Protocol::ALL {
        for c in of(p) {
            if used.contains(c) && !columns.iter().any(|x| x == c) {
                columns.push((*c).to_owned());
            }
        }
    }
    for c in used {
        if !columns.iter().any(|x| x == c) {
            columns.push(c.to_owned());
        }
    }
    columns
}

/// The header row `export` writes on `Devices` for these rows.
pub fn device_header(rows: &[Row]) -> Vec<String> {
    header(rows, DEVICE_COMMON_COLUMNS, device_columns)
}

/// The header row `export` writes on `Signals` for these rows.
pub fn signal_header(rows: &[Row]) -> Vec<String> {
    header(rows, SIGNAL_COMMON_COLUMNS, signal_columns)
}

fn cell_err(sheet: &'static str, row: u32, col: u16) -> impl Fn(XlsxError) -> ExportError {
    move |error| ExportError::Cell {
        sheet,
        cell: format!("{}{}", column_letter(u32::from(col)), row.saturating_add(1)),
        error,
    }
}

fn write_cell(
    ws: &mut Worksheet,
    sheet: &'static str,
    row: u32,
    col: u16,
    value: &Value,
) -> Result<(), ExportError> {
    let err = cell_err(sheet, row, col);
    let Some(v) = canonical_value(value) else {
        return Ok(());
    };
    match v {
        Value::Bool(b) => ws.write_boolean(row, col, b).map(|_| ()).map_err(err),
        Value::Number(n) => match n.as_f64() {
            Some(f) => ws.write_number(row, col, f).map(|_| ()).map_err(err),
            None => ws
                .write_string(row, col, n.to_string())
                .map(|_| ())
                .map_err(err),
        },
        Value::String(s) => ws.write_string(row, col, s).map(|_| ()).map_err(err),
        other => ws
            .write_string(row, col, other.to_string())
            .map(|_| ())
            .map_err(err),
    }
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn write_rows(
    ws: &mut Worksheet,
    sheet: &'static str,
    columns: &[String],
    rows: &[Row],
    bold: &CellFormat,
) -> Result<(), ExportError> {
    ws.set_name(sheet)?;
    for (j, name) in columns.iter().enumerate() {
        let col = u16::try_from(j).unwrap_or(u16::MAX);
        ws.write_string_with_format(0, col, name, bold)
            .map_err(cell_err(sheet, 0, col))?;
    }
    for (i, row) in rows.iter().enumerate() {
        let r = index_u32(i).saturating_add(1);
        for (j, name) in columns.iter().enumerate() {
            if let Some(v) = row.get(name) {
                write_cell(ws, sheet, r, u16::try_from(j).unwrap_or(u16::MAX), v)?;
            }
        }
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofit();
    Ok(())
}

/// The workbook (.xlsx bytes) of a config: sheets `Devices`, `Signals` and `Settings`. Old
/// column names are written under their new names ([`config::upgrade_columns`]).
pub fn export(raw: &RawConfig) -> Result<Vec<u8>, ExportError> {
    let mut devices = raw.devices.clone();
    config::upgrade_columns(&mut devices);
    let mut wb = Workbook::new();
    // A fixed creation time: the same config gives the same bytes (a committed example
    // workbook changes only when the config does).
    let mut props = DocProperties::new().set_title("fieldbridge configuration");
    if let Ok(t) = ExcelDateTime::from_ymd(2000, 1, 1) {
        props = props.set_creation_datetime(&t);
    }
    wb.set_properties(&props);
    let bold = CellFormat::new().set_bold();

    write_rows(
        wb.add_worksheet(),
        DEVICES_SHEET,
        &device_header(&devices),
        &devices,
        &bold,
    )?;
    write_rows(
        wb.add_worksheet(),
        SIGNALS_SHEET,
        &signal_header(&raw.signals),
        &raw.signals,
        &bold,
    )?;

    let ws = wb.add_worksheet();
    ws.set_name(SETTINGS_SHEET)?;
    ws.write_string_with_format(0, 0, "key", &bold)?;
    ws.write_string_with_format(0, 1, "value", &bold)?;
    let mut settings: Vec<(&str, Option<Value>)> = vec![
        ("redis_url", raw.redis_url.clone().map(Value::String)),
        ("stream_max_len", raw.stream_max_len.clone()),
    ];
    settings.extend(
        raw.unknown
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.clone()))),
    );
    for (i, (key, value)) in settings.iter().enumerate() {
        let r = index_u32(i).saturating_add(1);
        ws.write_string(r, 0, *key)
            .map_err(cell_err(SETTINGS_SHEET, r, 0))?;
        if let Some(v) = value {
            write_cell(ws, SETTINGS_SHEET, r, 1, v)?;
        }
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofit();

    Ok(wb.save_to_buffer()?)
}
