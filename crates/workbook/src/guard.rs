//! Checks on a .xlsx before calamine parses it, for inputs that would make calamine 0.38
//! panic (overflow checks are on in our release builds, and panic=abort) or allocate without
//! bound:
//! - a cell or row reference with more digits or letters than a u32 holds (`r="A99999999999"`)
//!   overflows its reference parser;
//! - a range whose end is before its start (`<dimension ref="B2:A1"/>`) underflows;
//! - `<sst uniqueCount="...">` is reserved up front;
//! - a sheet's cells are stored densely: its used area (rows × columns between the first and
//!   last cell with a value) is allocated, so one stray cell at `XFD1048576` would take 500 GB.
//!
//! And for an .ods: calamine loops for ever on a table that is never closed, so content.xml
//! must have balanced tags.
//!
//! A byte scan, not an XML parser: it looks at `r`/`ref` attribute values and at `<c>`
//! elements, and refuses only what would hurt; anything else is left to calamine's errors.

use std::io::{Cursor, Read};

use zip::ZipArchive;

/// The largest used area of a sheet read (cells, each 32 bytes once read).
pub const MAX_SHEET_CELLS: u64 = 1_000_000;

/// What is wrong, for the caller to put into an error.
pub(crate) type Problem = String;

fn part(zip: &mut ZipArchive<Cursor<&[u8]>>, name: &str) -> Option<Vec<u8>> {
    let mut f = zip.by_name(name).ok()?;
    let mut data = Vec::new();
    f.read_to_end(&mut data).ok()?;
    Some(data)
}

/// The value of attribute `name` in a tag's text (either quote), when present.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = tag
        .get(from..)
        .and_then(|t| t.find(name))
        .map(|i| i.saturating_add(from))
    {
        let before = tag.get(..at).and_then(|b| b.chars().last());
        let rest = tag.get(at.saturating_add(name.len())..).unwrap_or("");
        from = at.saturating_add(name.len());
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(rest) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let quote = rest.chars().next()?;
        if quote != '"' && quote != '\'' {
            continue;
        }
        let value = rest.get(1..)?;
        return value.find(quote).and_then(|end| value.get(..end));
    }
    None
}

/// The tags `<name ...>` of an XML text (their text up to `>`).
fn tags<'a>(xml: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{name}");
    let mut from = 0;
    std::iter::from_fn(move || loop {
        let at = xml.get(from..)?.find(&open)?.saturating_add(from);
        let after = at.saturating_add(open.len());
        from = after;
        let next = xml.get(after..)?.chars().next()?;
        if !(next.is_whitespace() || next == '>' || next == '/') {
            continue;
        }
        let end = xml.get(after..)?.find('>')?.saturating_add(after);
        from = end;
        return xml.get(at..=end);
    })
}

/// A cell reference `AB12` (column letters optional): (row, col), 0-based; Err when it has
/// more letters or digits than a sheet has (calamine would overflow); Ok(None) when it is
/// not a reference at all (calamine reports that itself).
fn cell_ref(r: &str) -> Result<Option<(u32, Option<u32>)>, Problem> {
    let letters = r.bytes().take_while(u8::is_ascii_alphabetic).count();
    let digits = r.get(letters..).unwrap_or("");
    if letters > 3 || digits.len() > 7 {
        return Err(format!(
            "the cell reference {:?} is out of any sheet's range",
            short(r)
        ));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let row: u32 = digits.parse().unwrap_or(0);
    let col = r.get(..letters).unwrap_or("").bytes().fold(0u32, |c, b| {
        c.saturating_mul(26)
            .saturating_add(u32::from(b.to_ascii_uppercase().saturating_sub(b'A')))
            .saturating_add(1)
    });
    Ok(Some((row.saturating_sub(1), col.checked_sub(1))))
}

fn short(s: &str) -> String {
    s.chars().take(24).collect()
}

/// Checks every `r` and `ref` value of a worksheet and returns its used area.
fn check_sheet(xml: &str) -> Result<u64, Problem> {
    // Every r="..." and ref="..." anywhere: row and cell references, ranges.
    for key in [" r=", " ref=", "\tr=", "\nr=", "\tref=", "\nref="] {
        let mut from = 0;
        while let Some(at) = xml
            .get(from..)
            .and_then(|t| t.find(key))
            .map(|i| i.saturating_add(from))
        {
            from = at.saturating_add(key.len());
            let rest = xml.get(from..).unwrap_or("");
            let Some(quote) = rest.chars().next().filter(|q| *q == '"' || *q == '\'') else {
                continue;
            };
            let value = rest.get(1..).unwrap_or("");
            let value = value
                .find(quote)
                .and_then(|end| value.get(..end))
                .unwrap_or(value);
            let mut ends = Vec::new();
            for r in value.split(':') {
                ends.push(cell_ref(r)?);
            }
            if let [Some((r1, c1)), Some((r2, c2))] = ends.as_slice() {
                if r2 < r1 || c2.zip(*c1).is_some_and(|(c2, c1)| c2 < c1) {
                    return Err(format!(
                        "the range {:?} ends before it starts",
                        short(value)
                    ));
                }
            }
        }
    }
    // The used area: cells with content (not self-closing <c .../>).
    let (mut rows, mut cols) = ((u32::MAX, 0u32), (u32::MAX, 0u32));
    for tag in tags(xml, "c") {
        if tag.ends_with("/>") {
            continue;
        }
        if let Some(Ok(Some((row, Some(col))))) = attr(tag, "r").map(cell_ref) {
            rows = (rows.0.min(row), rows.1.max(row));
            cols = (cols.0.min(col), cols.1.max(col));
        }
    }
    if rows.0 == u32::MAX {
        return Ok(0);
    }
    let height = u64::from(rows.1.saturating_sub(rows.0)).saturating_add(1);
    let width = u64::from(cols.1.saturating_sub(cols.0)).saturating_add(1);
    Ok(height.saturating_mul(width))
}

/// The worksheet part of each sheet: (name, zip path), from the workbook part and its
/// relationships. Empty when they cannot be read (calamine will say why).
fn sheet_parts(zip: &mut ZipArchive<Cursor<&[u8]>>) -> Vec<(String, String)> {
    let names: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .collect();
    let Some(workbook) = names.into_iter().find(|n| n.ends_with("workbook.xml")) else {
        return Vec::new();
    };
    let (dir, file) = workbook.rsplit_once('/').unwrap_or(("", &workbook));
    let rels_path = if dir.is_empty() {
        format!("_rels/{file}.rels")
    } else {
        format!("{dir}/_rels/{file}.rels")
    };
    let (Some(wb), Some(rels)) = (part(zip, &workbook), part(zip, &rels_path)) else {
        return Vec::new();
    };
    let (wb, rels) = (String::from_utf8_lossy(&wb), String::from_utf8_lossy(&rels));
    let targets: Vec<(&str, &str)> = tags(&rels, "Relationship")
        .filter_map(|t| Some((attr(t, "Id")?, attr(t, "Target")?)))
        .collect();
    tags(&wb, "sheet")
        .filter_map(|t| {
            let name = attr(t, "name")?;
            let id = attr(t, "r:id")?;
            let target = targets.iter().find(|(i, _)| *i == id)?.1;
            let path = match target.strip_prefix('/') {
                Some(abs) => abs.to_owned(),
                None if dir.is_empty() => target.to_owned(),
                None => format!("{dir}/{target}"),
            };
            Some((unescape(name), path))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Checks a .xlsx's shared strings and the worksheets of the sheets named `wanted`
/// (case-insensitively; all worksheets when the workbook's sheet list cannot be read).
pub(crate) fn check_xlsx(bytes: &[u8], wanted: &[&str]) -> Result<(), Problem> {
    let Ok(mut zip) = ZipArchive::new(Cursor::new(bytes)) else {
        return Ok(()); // calamine reports a damaged archive
    };
    let names: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .collect();
    if let Some(name) = names.iter().find(|n| n.ends_with("sharedStrings.xml")) {
        let data = part(&mut zip, name).unwrap_or_default();
        let text = String::from_utf8_lossy(&data).into_owned();
        let count = tags(&text, "sst")
            .next()
            .and_then(|t| attr(t, "uniqueCount"))
            .map(str::to_owned);
        if let Some(count) = count {
            // Each string takes at least `<si><t/></si>`: 13 bytes.
            let n: u64 = count.trim().parse().unwrap_or(u64::MAX);
            let bound = u64::try_from(data.len())
                .unwrap_or(u64::MAX)
                .div_euclid(13)
                .saturating_add(1);
            if n > bound {
                return Err(format!(
                    "the shared string table claims {} strings",
                    short(&count)
                ));
            }
        }
    }
    let parts = sheet_parts(&mut zip);
    let paths: Vec<(String, String)> = if parts.is_empty() {
        names
            .iter()
            .filter(|n| n.contains("worksheets/") && n.ends_with(".xml"))
            .map(|n| (n.clone(), n.clone()))
            .collect()
    } else {
        parts
            .into_iter()
            .filter(|(name, _)| wanted.iter().any(|w| name.trim().eq_ignore_ascii_case(w)))
            .collect()
    };
    for (name, path) in paths {
        let Some(data) = part(&mut zip, &path) else {
            continue;
        };
        let area = check_sheet(&String::from_utf8_lossy(&data))
            .map_err(|p| format!("sheet {name}: {p}"))?;
        if area > MAX_SHEET_CELLS {
            return Err(format!(
                "sheet {name}: its cells span {area} cells (at most {MAX_SHEET_CELLS}); delete stray values far from the table"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(cell_ref("A1"), Ok(Some((0, Some(0)))));
        assert_eq!(cell_ref("XFD1048576"), Ok(Some((1_048_575, Some(16_383)))));
        assert_eq!(cell_ref("12"), Ok(Some((11, None))));
        assert_eq!(cell_ref("foo"), Ok(None));
        assert!(cell_ref("A99999999999").is_err());
        assert!(cell_ref("ABCDEFGH1").is_err());
    }

    #[test]
    fn sheets() {
        let ok = r#"<worksheet><dimension ref="A1:C3"/><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="C3"><v>1</v></c><c r="Z9999" s="1"/></row></sheetData></worksheet>"#;
        assert_eq!(check_sheet(ok), Ok(9));
        assert!(check_sheet(r#"<dimension ref="B2:A1"/>"#).is_err());
        assert!(check_sheet(r#"<row r="99999999999">"#).is_err());
        let far = r#"<c r="A1"><v>1</v></c><c r="XFD1048576"><v>1</v></c>"#;
        assert_eq!(check_sheet(far), Ok(1_048_576 * 16_384));
    }

    #[test]
    fn attributes() {
        assert_eq!(
            attr(r#"<sheet name="Devices" sheetId="1" r:id="rId1"/>"#, "name"),
            Some("Devices")
        );
        assert_eq!(
            attr(r#"<sheet name='a' r:id="rId2"/>"#, "r:id"),
            Some("rId2")
        );
        assert_eq!(attr(r#"<sheet xname="a"/>"#, "name"), None);
        assert_eq!(tags(r#"<c r="A1"/><col/><c>x</c>"#, "c").count(), 2);
    }
}

/// Whether an XML text is well-formed as far as its tags go: every element closed, in
/// order; comments, CDATA, processing instructions and declarations terminated.
fn tags_balanced(xml: &[u8]) -> Result<(), Problem> {
    let find = |from: usize, pat: &[u8]| -> Option<usize> {
        xml.get(from..)?
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|i| i.saturating_add(from))
    };
    let mut stack: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while let Some(lt) = find(i, b"<") {
        let rest = xml.get(lt..).unwrap_or(&[]);
        let (end, close) = if rest.starts_with(b"<!--") {
            (b"-->".as_slice(), None)
        } else if rest.starts_with(b"<![CDATA[") {
            (b"]]>".as_slice(), None)
        } else if rest.starts_with(b"<?") {
            (b"?>".as_slice(), None)
        } else if rest.starts_with(b"<!") {
            (b">".as_slice(), None)
        } else {
            (b">".as_slice(), Some(()))
        };
        if close.is_none() {
            let Some(at) = find(lt, end) else {
                return Err("content.xml ends inside a comment or declaration".into());
            };
            i = at.saturating_add(end.len());
            continue;
        }
        // A tag: up to the first '>' outside quotes.
        let mut quote = None;
        let mut gt = None;
        for (k, b) in rest.iter().enumerate().skip(1) {
            match (quote, *b) {
                (None, b'"' | b'\'') => quote = Some(*b),
                (Some(q), b) if b == q => quote = None,
                (None, b'>') => {
                    gt = Some(k);
                    break;
                }
                _ => {}
            }
        }
        let Some(gt) = gt else {
            return Err("content.xml ends inside a tag".into());
        };
        let tag = rest.get(1..gt).unwrap_or(&[]);
        let name_of = |t: &[u8]| -> Vec<u8> {
            t.iter()
                .copied()
                .take_while(|b| !b.is_ascii_whitespace() && *b != b'/' && *b != b'>')
                .collect()
        };
        if let Some(closing) = tag.strip_prefix(b"/") {
            let name = name_of(closing);
            match stack.pop() {
                Some(open) if open == name.as_slice() => {}
                _ => {
                    return Err(format!(
                        "content.xml closes {:?} where it should not",
                        short(&String::from_utf8_lossy(&name))
                    ))
                }
            }
        } else if !tag.ends_with(b"/") {
            let len = name_of(tag).len();
            stack.push(tag.get(..len).unwrap_or(&[]));
        }
        i = lt.saturating_add(gt).saturating_add(1);
    }
    match stack.last() {
        None => Ok(()),
        Some(open) => Err(format!(
            "content.xml ends before {:?} is closed",
            short(&String::from_utf8_lossy(open))
        )),
    }
}

/// Checks an .ods before calamine parses it: calamine 0.38 loops for ever on a table that is
/// never closed, so content.xml must be balanced.
pub(crate) fn check_ods(bytes: &[u8]) -> Result<(), Problem> {
    let Ok(mut zip) = ZipArchive::new(Cursor::new(bytes)) else {
        return Ok(());
    };
    match part(&mut zip, "content.xml") {
        Some(xml) => tags_balanced(&xml),
        None => Ok(()),
    }
}

#[cfg(test)]
mod ods_tests {
    use super::tags_balanced;

    #[test]
    fn balance() {
        assert!(tags_balanced(
            b"<?xml version=\"1.0\"?><a x='>'><b/><!-- <c> --><c><![CDATA[</a>]]></c></a>"
        )
        .is_ok());
        assert!(tags_balanced(b"<a><b></a>").is_err());
        assert!(tags_balanced(b"<a><b/>").is_err());
        assert!(tags_balanced(b"<a><b x=\"1").is_err());
        assert!(tags_balanced(b"<a></ta-ble:table>").is_err());
        assert!(tags_balanced(b"<a><!-- x").is_err());
    }
}
