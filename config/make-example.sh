#!/bin/sh
# Regenerates config/example.xlsx from config/example.json with fieldbridge's own exporter
# (`fieldbridge config export`). The test `the_committed_example_workbook_is_the_example_json`
# (crates/workbook/tests/roundtrip.rs) fails when the committed workbook is stale.
set -eu
cd "$(dirname "$0")/.."
cargo run --quiet -p fieldbridge -- config export -c config/example.json -o config/example.xlsx
cargo run --quiet -p fieldbridge -- config validate config/example.xlsx
