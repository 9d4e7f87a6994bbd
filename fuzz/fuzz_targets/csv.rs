//! Any bytes as a CSV: the loader returns a data set or an error naming the place, never panics,
//! and what it returns is consistent (every row as wide as the header says, labels in range).
#![no_main]

use std::path::Path;

use dropship::data::{parse_csv, training_data, Header, LabelColumn};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let labels = [LabelColumn::Last, LabelColumn::None, LabelColumn::Named("label".into())];
    for (label, header) in labels.into_iter().zip([Header::Auto, Header::Present, Header::Absent]) {
        let split = (header == Header::Present).then_some("part");
        if let Ok(d) = parse_csv(data, Path::new("fuzz.csv"), &label, header, split) {
            assert_eq!(d.features.len(), d.rows() * d.width());
            assert!(d.labels.is_empty() || d.labels.len() == d.rows());
            assert!(d.labels.iter().all(|l| (*l as usize) < d.classes));
            assert!(d.features.iter().all(|v| v.is_finite()));
            assert!(d.parts.is_empty() || d.parts.len() == d.rows());
            let _ = training_data(d);
        }
    }
});
