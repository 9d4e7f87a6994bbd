//! Any bytes as a CSV: the loader returns a data set or an error naming the place, never panics,
//! and what it returns is consistent (every row as wide as the header says, labels in range).
//!
//! The first byte picks how the file is read (label column, header detection, split column), so
//! each execution parses once: building the CSV reader dominates an execution's cost.
#![no_main]

use std::path::Path;

use dropship_formats::data::{parse_csv, training_data, Header, LabelColumn};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((mode, csv)) = data.split_first() else { return };
    let label = match mode % 3 {
        0 => LabelColumn::Last,
        1 => LabelColumn::None,
        _ => LabelColumn::Named("label".into()),
    };
    let header = [Header::Auto, Header::Present, Header::Absent][usize::from(mode / 3 % 3)];
    let split = (mode / 9 % 2 == 1).then_some("part");
    if let Ok(d) = parse_csv(csv, Path::new("fuzz.csv"), &label, header, split) {
        assert_eq!(d.features.len(), d.rows() * d.width());
        assert!(d.labels.is_empty() || d.labels.len() == d.rows());
        assert!(d.labels.iter().all(|l| (*l as usize) < d.classes));
        assert!(d.features.iter().all(|v| v.is_finite()));
        assert!(d.parts.is_empty() || d.parts.len() == d.rows());
        let _ = training_data(d);
    }
});
