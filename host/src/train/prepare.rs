//! What every model of one seed shares: the split, the standardization fitted on its train rows,
//! the standardized parts and the initial weights. Built in one place, [`Prepared::for_seed`], so
//! the comparison, the sweep, the benchmark and the tests cannot drift apart.

use candle_core::{Device, Tensor};

use crate::data::split::{self, Split, Standardization};
use crate::data::Dataset;
use crate::rng::{stream, Stream};
use crate::train::model::Weights;

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

/// Standardized rows of one part as a candle tensor `(rows, input)`, built without a second copy,
/// and their labels.
#[derive(Clone, Debug)]
pub struct Rows {
    /// The standardized rows.
    pub x: Tensor,
    /// One label per row.
    pub labels: Vec<u32>,
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The values, row-major (a copy).
    pub fn values(&self) -> candle_core::Result<Vec<f32>> {
        self.x.flatten_all()?.to_vec1()
    }
}

/// One seed's split, the standardization fitted on its train rows, the standardized train and
/// validation rows, and the initial weights: the same for every model trained on that seed, so the
/// models differ only in their regularizer. Test rows stay raw until they are evaluated (in
/// chunks), which keeps a large data set's memory to the raw matrix and one standardized copy of
/// its train and validation rows.
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
    /// Standardized train rows.
    pub train: Rows,
    /// Standardized validation rows.
    pub val: Rows,
    /// Glorot-uniform initial weights for hidden layers of the given widths, zero biases.
    pub initial: Weights,
}

impl Prepared {
    /// Splits `data` as `spec` says, stratified and reproducible from `seed` (or as the user's own
    /// split in `data.parts` says), standardizes the train and validation rows with the train rows'
    /// statistics and draws initial weights for hidden layers of widths `hidden`.
    pub fn for_seed(data: &Dataset, spec: SplitSpec, seed: u64, hidden: &[usize]) -> anyhow::Result<Self> {
        let split = if data.parts.is_empty() {
            split::stratified(data, spec.val, spec.test, seed)?
        } else {
            split::given(data)?
        };
        let standardization = Standardization::fit(data, &split.train);
        let initial = Weights::glorot(data.width(), hidden, data.classes, &mut stream(seed, Stream::Init));
        let rows = |part: &[usize]| standardized(data, &standardization, part);
        Ok(Self {
            seed,
            input: data.width(),
            classes: data.classes,
            train: rows(&split.train)?,
            val: rows(&split.val)?,
            standardization,
            split,
            initial,
        })
    }

    /// `rows` of `data`, standardized with this seed's statistics (the test rows, for example).
    pub fn standardized(&self, data: &Dataset, rows: &[usize]) -> candle_core::Result<Rows> {
        standardized(data, &self.standardization, rows)
    }
}

fn standardized(data: &Dataset, s: &Standardization, rows: &[usize]) -> candle_core::Result<Rows> {
    let x = Tensor::from_vec(s.apply(data, rows), (rows.len(), data.width()), &Device::Cpu)?;
    Ok(Rows { x, labels: rows.iter().map(|r| data.labels[*r]).collect() })
}
