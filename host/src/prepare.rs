//! What every model of one seed shares: the split, the standardization fitted on its train rows,
//! the standardized parts and the initial weights. Built in one place, [`Prepared::for_seed`], so
//! the comparison, the sweep, the benchmark and the tests cannot drift apart.

use crate::data::Dataset;
use crate::model::Weights;
use crate::rng::{stream, Stream};
use crate::split::{self, Split, SplitError, Standardization};

/// How the rows are split: shares for validation and test, the rest trains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitSpec {
    /// Share of rows for validation.
    pub val: f64,
    /// Share of rows for test.
    pub test: f64,
}

impl Default for SplitSpec {
    /// The course's 60/20/20.
    fn default() -> Self {
        Self { val: 0.2, test: 0.2 }
    }
}

/// One seed's split, standardized with train statistics, and the initial weights: the same for
/// every model trained on that seed, so the models differ only in their regularizer.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The seed everything here was drawn from.
    pub seed: u64,
    /// Row indices of the three parts.
    pub split: Split,
    /// Input width.
    pub input: usize,
    /// Class count.
    pub classes: usize,
    /// Fitted on the train rows only.
    pub standardization: Standardization,
    /// Standardized train rows, row-major, and their labels.
    pub train: (Vec<f32>, Vec<u32>),
    /// Standardized validation rows and labels.
    pub val: (Vec<f32>, Vec<u32>),
    /// Standardized test rows and labels.
    pub test: (Vec<f32>, Vec<u32>),
    /// Glorot-uniform initial weights for hidden layers of the given widths, zero biases.
    pub initial: Weights,
}

impl Prepared {
    /// Splits `data` as `spec` says, stratified and reproducible from `seed` (or as the user's own
    /// split in `data.parts` says), standardizes the three parts with the train rows' statistics
    /// and draws initial weights for hidden layers of widths `hidden`.
    pub fn for_seed(data: &Dataset, spec: SplitSpec, seed: u64, hidden: &[usize]) -> Result<Self, SplitError> {
        let split = if data.parts.is_empty() {
            split::stratified(data, spec.val, spec.test, seed)?
        } else {
            split::given(data)?
        };
        let standardization = Standardization::fit(data, &split.train);
        let part = |rows: &[usize]| (standardization.apply(data, rows), rows.iter().map(|r| data.labels[*r]).collect());
        let initial = Weights::glorot(data.width(), hidden, data.classes, &mut stream(seed, Stream::Init));
        Ok(Self {
            seed,
            input: data.width(),
            classes: data.classes,
            train: part(&split.train),
            val: part(&split.val),
            test: part(&split.test),
            standardization,
            split,
            initial,
        })
    }
}
