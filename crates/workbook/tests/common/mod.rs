//! Building workbooks cell by cell for tests (rust_xlsxwriter directly, not the exporter).

#![allow(dead_code)]

use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

/// A cell of a test sheet.
#[derive(Debug, Clone)]
pub enum C {
    /// Text.
    S(&'static str),
    /// A number.
    N(f64),
    /// A boolean.
    B(bool),
    /// An empty cell.
    E,
    /// A formula whose cached result is a spreadsheet error (`#DIV/0!`).
    Err,
    /// A date cell.
    Date,
}

pub use C::*;

/// The .xlsx bytes of sheets given as rows of cells (row 1 first).
pub fn xlsx(sheets: &[(&str, Vec<Vec<C>>)]) -> Vec<u8> {
    let mut wb = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (name, rows) in sheets {
        let ws = wb.add_worksheet();
        ws.set_name(*name).unwrap();
        for (i, row) in rows.iter().enumerate() {
            for (j, cell) in row.iter().enumerate() {
                let (r, c) = (i as u32, j as u16);
                match cell {
                    S(s) => {
                        ws.write_string(r, c, *s).unwrap();
                    }
                    N(n) => {
                        ws.write_number(r, c, *n).unwrap();
                    }
                    B(b) => {
                        ws.write_boolean(r, c, *b).unwrap();
                    }
                    E => {}
                    Err => {
                        ws.write_formula(r, c, Formula::new("=1/0").set_result("#DIV/0!"))
                            .unwrap();
                    }
                    Date => {
                        let d = ExcelDateTime::from_ymd(2024, 1, 2).unwrap();
                        ws.write_datetime_with_format(r, c, &d, &date).unwrap();
                    }
                }
            }
        }
    }
    wb.save_to_buffer().unwrap()
}

/// The path of a file of the repository.
pub fn repo_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}
