//! What every model of one seed shares: the split, the standardization fitted on its train rows,
//! the standardized parts and the initial weights. Built in one place, [`Prepared::for_seed`], so
//! the comparison, the sweep, the benchmark and the tests cannot drift apart.

use candle_core::{DType, Device, Tensor};
use dropship_shared::{Activation, Dims, LayerShape};

use crate::data::split::{self, Split, Standardization};
use crate::data::Dataset;
use crate::rng::{stream, Stream};
use crate::train::model::Weights;
use crate::train::task::{self, Task};

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
/// their labels and their targets.
#[derive(Clone, Debug)]
pub struct Rows {
    /// The standardized rows.
    pub x: Tensor,
    /// One label per row (classes; 0/1 for binary; an autoencoder's anomaly flags when the data
    /// has them; empty for a regression).
    pub labels: Vec<u32>,
    /// What the outputs learn, row-major, [`Prepared::outputs`] per row: 0/1 (binary), the
    /// standardized targets (regress), the standardized input (autoencode); empty for classify.
    pub targets: Vec<f32>,
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.x.dims().first().copied().unwrap_or(0)
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    /// What the model learns.
    pub task: Task,
    /// Output width: the class count, 1 (binary, regress), the input width (autoencode).
    pub outputs: usize,
    /// Fitted on the train rows only.
    pub standardization: Standardization,
    /// `(mean, scale)` of a regression's targets over the train rows: the outputs learn
    /// `(t - mean) / scale`, and the export restores the units.
    pub target_standardization: Option<(f32, f32)>,
    /// Standardized train rows.
    pub train: Rows,
    /// Standardized validation rows.
    pub val: Rows,
    /// Glorot-uniform initial weights for hidden layers of the given widths, zero biases.
    pub initial: Weights,
}

impl Prepared {
    /// Splits `data` as `spec` says, reproducible from `seed` (stratified by class for a task with
    /// labels, at random for a regression; or as the user's own split in `data.parts` says),
    /// standardizes the train and validation rows with the train rows' statistics and draws
    /// initial weights for hidden layers of widths `hidden` and `task`'s output layer.
    pub fn for_seed(data: &Dataset, spec: SplitSpec, seed: u64, hidden: &[usize], task: Task) -> anyhow::Result<Self> {
        Self::for_model(data, spec, seed, None, hidden, task)
    }

    /// [`Prepared::for_seed`] for a convolutional network: `front` is its image and the layers
    /// before its Dense layers (`None`: an MLP). An image is standardized per channel
    /// ([`Standardization::fit_per_channel`]), an MLP's rows per feature.
    pub fn for_model(
        data: &Dataset,
        spec: SplitSpec,
        seed: u64,
        front: Option<(Dims, &[LayerShape])>,
        hidden: &[usize],
        task: Task,
    ) -> anyhow::Result<Self> {
        let split = match (data.parts.is_empty(), task, data.labels.is_empty()) {
            (false, _, _) => split::given(data)?,
            (true, Task::Regress, _) | (true, _, true) => split::unstratified(data, spec.val, spec.test, seed)?,
            (true, _, false) => split::stratified(data, spec.val, spec.test, seed)?,
        };
        let standardization = match front {
            Some((image, _)) => Standardization::fit_per_channel(data, &split.train, image.channels),
            None => Standardization::fit(data, &split.train),
        };
        let output = task::output_layer(task, data);
        let (input, layers) = front.unwrap_or((Dims::flat(data.width()), &[]));
        anyhow::ensure!(
            input.len() == data.width(),
            "--image {}x{}x{} holds {} values, the rows have {}",
            input.width,
            input.height,
            input.channels,
            input.len(),
            data.width()
        );
        let dense = hidden.iter().map(|units| LayerShape::dense(*units, Activation::Relu)).chain([output]);
        let shapes: Vec<LayerShape> = layers.iter().copied().chain(dense).collect();
        let initial = Weights::glorot_for(input, &shapes, &mut stream(seed, Stream::Init));
        let target_standardization = (task == Task::Regress).then(|| target_statistics(data, &split.train));
        let mut prepared = Self {
            seed,
            input: data.width(),
            task,
            outputs: output.units,
            train: Rows {
                x: Tensor::zeros((0, data.width()), DType::F32, &Device::Cpu)?,
                labels: vec![],
                targets: vec![],
            },
            val: Rows {
                x: Tensor::zeros((0, data.width()), DType::F32, &Device::Cpu)?,
                labels: vec![],
                targets: vec![],
            },
            standardization,
            target_standardization,
            split,
            initial,
        };
        prepared.train = prepared.standardized(data, &prepared.split.train)?;
        prepared.val = prepared.standardized(data, &prepared.split.val)?;
        Ok(prepared)
    }

    /// `rows` of `data`, standardized with this seed's statistics, with their labels and targets
    /// (the test rows, for example).
    pub fn standardized(&self, data: &Dataset, rows: &[usize]) -> candle_core::Result<Rows> {
        let values = self.standardization.apply(data, rows);
        let labels = if data.labels.is_empty() { vec![] } else { rows.iter().map(|r| data.labels[*r]).collect() };
        let targets = match (self.task, self.target_standardization) {
            (Task::Classify, _) => vec![],
            (Task::Binary, _) => labels.iter().map(|l| *l as f32).collect(),
            (Task::Regress, Some((mean, scale))) => rows.iter().map(|r| (data.targets[*r] - mean) / scale).collect(),
            (Task::Regress, None) => rows.iter().map(|r| data.targets[*r]).collect(),
            (Task::Autoencode, _) => values.clone(),
        };
        let x = Tensor::from_vec(values, (rows.len(), data.width()), &Device::Cpu)?;
        Ok(Rows { x, labels, targets })
    }
}

/// Mean and population standard deviation of the targets of `rows` (a scale of 1 for constant
/// targets).
fn target_statistics(data: &Dataset, rows: &[usize]) -> (f32, f32) {
    let n = rows.len().max(1) as f64;
    let mean = rows.iter().map(|r| data.targets[*r] as f64).sum::<f64>() / n;
    let var = rows.iter().map(|r| (data.targets[*r] as f64 - mean).powi(2)).sum::<f64>() / n;
    let scale = var.sqrt() as f32;
    (mean as f32, if scale > 0.0 && scale.is_finite() { scale } else { 1.0 })
}
