//! `docs/config-columns.md` is the column reference generated from the readers; this test
//! fails when it is stale and rewrites it with `UPDATE_DOCS=1`.

use std::path::Path;

#[test]
fn column_reference_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config-columns.md");
    let generated = config::column_reference();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{} is stale: run `UPDATE_DOCS=1 cargo test -p fieldbridge-config --test columns`",
        path.display()
    );
}
