//! Stratified train/validation/test split and the standardization fitted on the train rows only.

use rand::seq::SliceRandom;

use crate::data::{Dataset, Part};
use crate::rng::{stream, Stream};

/// Row indices of the three parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Rows to fit on.
    pub train: Vec<usize>,
    /// Rows to watch after every epoch and choose models by.
    pub val: Vec<usize>,
    /// Rows held out for the final report.
    pub test: Vec<usize>,
}

/// Why a data set cannot be split as asked.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("{path}: class {class} (column `{column}`) has {count} row(s): too few to put at least one in each of train, val and test")]
    ClassTooSmall { path: std::path::PathBuf, column: String, class: usize, count: usize },
    #[error("{path}: {count} row(s): too few to put at least one in each of train, val and test")]
    TooFewRows { path: std::path::PathBuf, count: usize },
    #[error("{path}: the user's split has no {part} rows")]
    EmptyPart { path: std::path::PathBuf, part: &'static str },
    #[error("--val-fraction and --test-fraction must be positive with a sum below 1 (got {val} and {test})")]
    BadFractions { val: f64, test: f64 },
}

/// The user's own split: each row's part as the data says (a split column, or separate files).
/// Every part must have rows.
pub fn given(data: &Dataset) -> Result<Split, SplitError> {
    let rows_of = |part: Part| -> Vec<usize> { (0..data.parts.len()).filter(|r| data.parts[*r] == part).collect() };
    let split = Split { train: rows_of(Part::Train), val: rows_of(Part::Val), test: rows_of(Part::Test) };
    for (rows, part) in [(&split.train, "train"), (&split.val, "val"), (&split.test, "test")] {
        if rows.is_empty() {
            return Err(SplitError::EmptyPart { path: data.source.clone(), part });
        }
    }
    Ok(split)
}

/// Splits rows per class so that every class keeps its share in every part (largest remainders
/// decide the odd rows); `ceil(n * test)` test rows and `ceil(n * val)` val rows in all, as
/// scikit-learn's `train_test_split` gives. Reproducible from `seed`.
pub fn stratified(data: &Dataset, val: f64, test: f64, seed: u64) -> Result<Split, SplitError> {
    if !(val > 0.0 && test > 0.0 && val + test < 1.0) {
        return Err(SplitError::BadFractions { val, test });
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); data.classes];
    for (row, label) in data.labels.iter().enumerate() {
        by_class[*label as usize].push(row);
    }
    split_groups(data, by_class, val, test, seed, false)
}

/// Splits rows at random in the same shares (a regression's, or rows without labels): the rows are
/// one group of [`stratified`]'s.
pub fn unstratified(data: &Dataset, val: f64, test: f64, seed: u64) -> Result<Split, SplitError> {
    if !(val > 0.0 && test > 0.0 && val + test < 1.0) {
        return Err(SplitError::BadFractions { val, test });
    }
    split_groups(data, vec![(0..data.rows()).collect()], val, test, seed, true)
}

/// Splits each group of rows (`single`: one group of all rows, not classes) in the shares.
fn split_groups(
    data: &Dataset,
    mut by_class: Vec<Vec<usize>>,
    val: f64,
    test: f64,
    seed: u64,
    single: bool,
) -> Result<Split, SplitError> {
    for (class, rows) in by_class.iter().enumerate() {
        if !rows.is_empty() && rows.len() < 3 {
            return Err(too_small(data, class, rows.len(), single));
        }
    }
    let n: usize = by_class.iter().map(Vec::len).sum();
    let n_test = (n as f64 * test).ceil() as usize;
    let n_val = (n as f64 * val).ceil() as usize;
    let test_counts = apportion(&by_class, n_test, &vec![0; by_class.len()]);
    let val_counts = apportion(&by_class, n_val, &test_counts);
    let mut rng = stream(seed, Stream::Split);
    let mut split = Split { train: Vec::new(), val: Vec::new(), test: Vec::new() };
    for (class, rows) in by_class.iter_mut().enumerate() {
        rows.shuffle(&mut rng);
        let (t, v) = (test_counts[class], val_counts[class]);
        if !rows.is_empty() && rows.len() <= t + v {
            return Err(too_small(data, class, rows.len(), single));
        }
        split.test.extend(&rows[..t]);
        split.val.extend(&rows[t..t + v]);
        split.train.extend(&rows[t + v..]);
    }
    for part in [&mut split.train, &mut split.val, &mut split.test] {
        part.sort_unstable();
    }
    Ok(split)
}

fn too_small(data: &Dataset, class: usize, count: usize, single: bool) -> SplitError {
    if single {
        return SplitError::TooFewRows { path: data.source.clone(), count };
    }
    SplitError::ClassTooSmall { path: data.source.clone(), column: data.label_name.clone(), class, count }
}

/// Shares `total` rows among classes in proportion to their size, at least one per non-empty
/// class, never more than a class has left after `taken`.
fn apportion(by_class: &[Vec<usize>], total: usize, taken: &[usize]) -> Vec<usize> {
    let n: usize = by_class.iter().map(Vec::len).sum();
    let exact: Vec<f64> = by_class.iter().map(|r| r.len() as f64 * total as f64 / n as f64).collect();
    let mut counts: Vec<usize> =
        exact.iter().zip(by_class).map(|(e, r)| if r.is_empty() { 0 } else { (e.floor() as usize).max(1) }).collect();
    let mut order: Vec<usize> = (0..by_class.len()).collect();
    order.sort_by(|a, b| (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor())));
    let mut assigned: usize = counts.iter().sum();
    for class in order.iter().cycle().take(by_class.len() * 2) {
        if assigned >= total {
            break;
        }
        if by_class[*class].len() > counts[*class] + taken[*class] + 1 {
            counts[*class] += 1;
            assigned += 1;
        }
    }
    counts
}

/// Per-feature mean and scale of the train rows: `(x - mean) / scale`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardization {
    /// Mean of each feature over the train rows.
    pub mean: Vec<f32>,
    /// Population standard deviation over the train rows; 1 where it is 0 (the feature is only centered).
    pub scale: Vec<f32>,
}

impl Standardization {
    /// Fits on `rows` of `data` only.
    pub fn fit(data: &Dataset, rows: &[usize]) -> Self {
        let w = data.width();
        let mut mean = vec![0f64; w];
        for r in rows {
            for (m, x) in mean.iter_mut().zip(data.row(*r)) {
                *m += *x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows.len() as f64);
        let mut var = vec![0f64; w];
        for r in rows {
            for ((v, x), m) in var.iter_mut().zip(data.row(*r)).zip(&mean) {
                *v += (*x as f64 - m).powi(2);
            }
        }
        let scale = var
            .iter()
            .map(|v| {
                let s = (v / rows.len() as f64).sqrt() as f32;
                if s > 0.0 && s.is_finite() {
                    s
                } else {
                    1.0
                }
            })
            .collect();
        Self { mean: mean.iter().map(|m| *m as f32).collect(), scale }
    }

    /// Fits one mean and one scale per channel over every position of `rows` (images of
    /// `channels` values per pixel, channels last), repeated for each feature: what a
    /// convolution's input needs. Per-pixel statistics would blow a rarely inked pixel up to
    /// hundreds of standard deviations in the rows where it is inked.
    pub fn fit_per_channel(data: &Dataset, rows: &[usize], channels: usize) -> Self {
        let (w, channels) = (data.width(), channels.max(1));
        let (mut sum, mut count) = (vec![0f64; channels], vec![0f64; channels]);
        for r in rows {
            for (i, x) in data.row(*r).iter().enumerate() {
                sum[i % channels] += *x as f64;
                count[i % channels] += 1.0;
            }
        }
        let mean: Vec<f64> = sum.iter().zip(&count).map(|(s, n)| s / n.max(1.0)).collect();
        let mut var = vec![0f64; channels];
        for r in rows {
            for (i, x) in data.row(*r).iter().enumerate() {
                var[i % channels] += (*x as f64 - mean[i % channels]).powi(2);
            }
        }
        let scale: Vec<f32> = var
            .iter()
            .zip(&count)
            .map(|(v, n)| {
                let s = (v / n.max(1.0)).sqrt() as f32;
                if s > 0.0 && s.is_finite() {
                    s
                } else {
                    1.0
                }
            })
            .collect();
        Self {
            mean: (0..w).map(|i| mean[i % channels] as f32).collect(),
            scale: (0..w).map(|i| scale[i % channels]).collect(),
        }
    }

    /// The given rows, standardized with the shared core's arithmetic, row-major.
    pub fn apply(&self, data: &Dataset, rows: &[usize]) -> Vec<f32> {
        let w = data.width();
        let mut out = vec![0.0; rows.len() * w];
        for (o, r) in out.chunks_exact_mut(w).zip(rows) {
            dropship_shared::ops::standardize::standardize(data.row(*r), &self.mean, &self.scale, o);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn dataset(labels: &[u32], features: Vec<f32>) -> Dataset {
        let width = features.len() / labels.len();
        Dataset {
            source: PathBuf::from("mem"),
            feature_names: (0..width).map(|i| format!("f{i}")).collect(),
            label_name: "label".into(),
            features,
            labels: labels.to_vec(),
            classes: *labels.iter().max().unwrap() as usize + 1,
            targets: labels.iter().map(|l| *l as f32).collect(),
            label_issue: None,
            header: crate::data::Header::Present,
            parts: Vec::new(),
            other_sources: Vec::new(),
        }
    }

    #[test]
    fn digits_split_counts_match_the_keras_reference_per_class() {
        let d = crate::data::load_csv(crate::data::BUNDLED_DIGITS.as_ref(), &Default::default(), Default::default())
            .unwrap();
        let s = stratified(&d, 0.2, 0.2, 0).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (1077, 360, 360));
        for class in 0..10u32 {
            let count = |rows: &[usize]| rows.iter().filter(|r| d.labels[**r] == class).count();
            let total = d.labels.iter().filter(|l| **l == class).count();
            assert!((count(&s.test) as f64 - total as f64 * 0.2).abs() <= 1.0, "class {class}");
            assert!((count(&s.val) as f64 - total as f64 * 0.2).abs() <= 1.0, "class {class}");
        }
        let mut all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..d.rows()).collect::<Vec<_>>());
        assert_eq!(s, stratified(&d, 0.2, 0.2, 0).unwrap());
        assert_ne!(s, stratified(&d, 0.2, 0.2, 1).unwrap());
    }

    #[test]
    fn small_split_by_hand() {
        // 10 rows of class 0, 5 of class 1: test and val get 3 each (ceil 15 * 0.2), 2 + 1 per part
        let labels: Vec<u32> = [vec![0; 10], vec![1; 5]].concat();
        let d = dataset(&labels, (0..15).map(|i| i as f32).collect());
        let s = stratified(&d, 0.2, 0.2, 7).unwrap();
        let ones = |rows: &[usize]| rows.iter().filter(|r| labels[**r] == 1).count();
        assert_eq!((s.test.len(), s.val.len(), s.train.len()), (3, 3, 9));
        assert_eq!((ones(&s.test), ones(&s.val), ones(&s.train)), (1, 1, 3));
    }

    #[test]
    fn a_class_too_small_for_three_parts_is_an_error() {
        let d = dataset(&[0, 0, 0, 0, 1, 1], vec![0.0; 6]);
        let e = stratified(&d, 0.2, 0.2, 0).unwrap_err();
        assert!(e.to_string().contains("mem: class 1 (column `label`) has 2 row(s)"), "{e}");
    }

    #[test]
    fn standardization_uses_train_rows_only_and_centers_constant_columns() {
        // column 0 train values 1, 3 -> mean 2, std 1; column 1 constant 5 -> centered, scale 1
        let d = dataset(&[0, 1, 0], vec![1.0, 5.0, 3.0, 5.0, 100.0, 5.0]);
        let s = Standardization::fit(&d, &[0, 1]);
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.scale, vec![1.0, 1.0]);
        assert_eq!(s.apply(&d, &[2]), vec![98.0, 0.0]);
    }
}
