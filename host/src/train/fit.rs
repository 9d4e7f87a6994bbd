//! One training run with Keras semantics: seeded batches, Keras Adam, L2 / dropout / weight decay,
//! validation after every epoch, optional early stopping, and the per-epoch history.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::Optimizer;
use dropship_shared::{Activation, Dims, Task};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::augment::{Augment, AugmentError};
use crate::data::Dataset;
use crate::rng::{stream, Stream};
use crate::train::adam::{AdamConfig, KerasAdam};
use crate::train::features::LayerList;
use crate::train::model::{dropout_mask, logits, Mlp, Weights};
use crate::train::prepare::{Prepared, Rows};
use crate::train::task::{self, BatchTargets};

/// Which kernels an L2 penalty applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct L2Layers {
    /// Every hidden Dense kernel.
    pub hidden: bool,
    /// The output Dense kernel.
    pub output: bool,
    /// Hidden kernels by number (1 is the first hidden layer), besides `hidden`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numbered: Vec<usize>,
}

/// How a model is regularized in training. Nothing of it reaches inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", try_from = "RegularizerFields")]
pub enum Regularizer {
    /// Nothing.
    None,
    /// `lambda * sum(w^2)` per chosen kernel added to the loss (no 1/2, as Keras).
    L2 { lambda: f64, layers: L2Layers },
    /// Inverted dropout after each hidden Dense, in training only: one rate for every hidden
    /// layer, or one rate per hidden layer.
    Dropout { rates: Vec<f32> },
    /// AdamW decoupled weight decay on the kernels.
    WeightDecay { decay: f64 },
}

/// `Regularizer`'s JSON read as a plain struct: serde reads an internally tagged enum through a
/// buffer that cannot hold the numbers of `serde_json`'s `arbitrary_precision` (which a dependency
/// turns on), so `config.json` would not read back.
#[derive(Deserialize)]
struct RegularizerFields {
    kind: String,
    lambda: Option<f64>,
    layers: Option<L2Layers>,
    rate: Option<f32>,
    rates: Option<Vec<f32>>,
    decay: Option<f64>,
}

impl TryFrom<RegularizerFields> for Regularizer {
    type Error = String;

    fn try_from(f: RegularizerFields) -> Result<Self, String> {
        let missing = |field: &str| format!("regularizer `{}` needs `{field}`", f.kind);
        Ok(match f.kind.as_str() {
            "none" => Regularizer::None,
            "l2" => Regularizer::L2 {
                lambda: f.lambda.ok_or_else(|| missing("lambda"))?,
                layers: f.layers.ok_or_else(|| missing("layers"))?,
            },
            "dropout" => {
                Regularizer::Dropout { rates: f.rates.or(f.rate.map(|r| vec![r])).ok_or_else(|| missing("rates"))? }
            }
            "weight-decay" => Regularizer::WeightDecay { decay: f.decay.ok_or_else(|| missing("decay"))? },
            other => return Err(format!("unknown regularizer kind `{other}`")),
        })
    }
}

impl L2Layers {
    /// Every kernel, hidden and output.
    pub fn all() -> Self {
        Self { hidden: true, output: true, numbered: Vec::new() }
    }

    /// Parses `--l2-layers` names: `hidden` (every hidden kernel), `output`, `hidden1`, `hidden2`, ….
    pub fn parse(names: &[String]) -> Result<Self, ConfigError> {
        let mut layers = L2Layers { hidden: false, output: false, numbered: Vec::new() };
        for name in names {
            match name.as_str() {
                "hidden" => layers.hidden = true,
                "output" => layers.output = true,
                other => match other.strip_prefix("hidden").and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) if n >= 1 => layers.numbered.push(n),
                    _ => return Err(ConfigError::UnknownL2Layer(other.to_string())),
                },
            }
        }
        layers.numbered.sort_unstable();
        layers.numbered.dedup();
        Ok(layers)
    }

    /// Whether layer `index` (0-based) of a network of `depth` layers is penalized.
    pub fn applies(&self, index: usize, depth: usize) -> bool {
        if index + 1 == depth {
            self.output
        } else {
            self.hidden || self.numbered.contains(&(index + 1))
        }
    }

    /// The names, as `--l2-layers` takes them.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if self.hidden {
            names.push("hidden".into());
        }
        names.extend(self.numbered.iter().map(|n| format!("hidden{n}")));
        if self.output {
            names.push("output".into());
        }
        names
    }
}

impl Regularizer {
    /// The one regularizer `train` trains with, from its flags (at most one may be given).
    pub fn from_flags(
        l2: Option<f64>,
        layers: L2Layers,
        dropout: Option<Vec<f32>>,
        weight_decay: Option<f64>,
    ) -> Result<Self, ConfigError> {
        match (l2, dropout, weight_decay) {
            (None, None, None) => Ok(Regularizer::None),
            (Some(lambda), None, None) => Ok(Regularizer::L2 { lambda, layers }),
            (None, Some(rates), None) => Ok(Regularizer::Dropout { rates }),
            (None, None, Some(decay)) => Ok(Regularizer::WeightDecay { decay }),
            _ => Err(ConfigError::SeveralRegularizers),
        }
    }

    /// The model's short name, also its run directory: `base`, `l2`, `dropout`, `weight-decay`.
    pub fn model_name(&self) -> &'static str {
        match self {
            Regularizer::None => "base",
            Regularizer::L2 { .. } => "l2",
            Regularizer::Dropout { .. } => "dropout",
            Regularizer::WeightDecay { .. } => "weight-decay",
        }
    }
}

impl Regularizer {
    /// The dropout rate after hidden layer `index` (0-based); 0 without dropout.
    pub fn dropout_rate(&self, index: usize) -> f32 {
        match self {
            Regularizer::Dropout { rates } if rates.len() == 1 => rates[0],
            Regularizer::Dropout { rates } => rates.get(index).copied().unwrap_or(0.0),
            _ => 0.0,
        }
    }
}

impl std::fmt::Display for Regularizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Regularizer::None => write!(f, "none"),
            Regularizer::L2 { lambda, layers } => write!(f, "L2({lambda}) on {}", layers.names().join("+")),
            Regularizer::Dropout { rates } => {
                let rates: Vec<String> = rates.iter().map(f32::to_string).collect();
                write!(f, "Dropout({}) after each hidden Dense", rates.join(", "))
            }
            Regularizer::WeightDecay { decay } => write!(f, "AdamW weight decay {decay}"),
        }
    }
}

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Widths of the hidden layers, from the input side (`[128]` is the course's model).
    #[serde(deserialize_with = "widths")]
    pub hidden: Vec<usize>,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of every random draw (split, init, batch order, dropout).
    pub seed: u64,
    /// Training-time regularization.
    pub regularizer: Regularizer,
    /// Stop after this many epochs without a better validation loss, restoring the best weights.
    pub early_stopping: Option<usize>,
    /// Training-only data augmentation (none by default).
    #[serde(default)]
    pub augment: Augment,
    /// What follows every hidden layer (ReLU, the course's).
    #[serde(default = "relu", with = "by_name")]
    pub activation: Activation,
    /// A BatchNorm (Keras's) between every hidden Dense and its activation.
    #[serde(default)]
    pub batch_norm: bool,
    /// What the model learns (classes by default).
    #[serde(default = "classify", with = "by_name")]
    pub task: Task,
    /// A convolutional network's layer list and the image it reads; `None`: an MLP of `hidden`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
}

/// A convolutional network as `--layers` and `--image` give it: the list (its Dense widths are
/// also `hidden` and the output layer) and the image the rows are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// `[height, width, channels]` of one row.
    pub image: [usize; 3],
    /// The layer list, `conv8k3,maxpool2,flatten,dense10` ([`crate::train::features::parse`]).
    pub layers: String,
}

impl Features {
    /// The image one row is.
    pub fn image(&self) -> Dims {
        Dims::image(self.image[0], self.image[1], self.image[2])
    }

    /// The list read, its convolutions followed by `activation`.
    pub fn list(&self, activation: Activation) -> Result<LayerList, crate::train::features::LayersError> {
        crate::train::features::parse(&self.layers, self.image(), activation)
    }
}

fn classify() -> Task {
    Task::Classify
}

fn relu() -> Activation {
    Activation::Relu
}

/// A value of the layer vocabulary in a run's configuration, by its name.
mod by_name {
    use dropship_shared::layer::Named;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Named, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.name())
    }

    pub fn deserialize<'de, T: Named, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let name = String::deserialize(d)?;
        T::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("{} `{name}` is not one this dropship knows", T::WHAT)))
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            hidden: vec![128],
            epochs: 100,
            batch_size: 32,
            lr: 1e-3,
            seed: 0,
            regularizer: Regularizer::None,
            early_stopping: None,
            augment: Augment::default(),
            activation: Activation::Relu,
            batch_norm: false,
            task: Task::Classify,
            features: None,
        }
    }
}

/// `hidden` as a list, or as the one number runs written before deeper networks hold.
fn widths<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Widths {
        One(usize),
        Many(Vec<usize>),
    }
    Ok(match Widths::deserialize(d)? {
        Widths::One(w) => vec![w],
        Widths::Many(ws) => ws,
    })
}

/// A configuration that cannot be trained, naming the flag.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("--epochs must be between 1 and {max}, got {0}", max = crate::limits::MAX_EPOCHS)]
    Epochs(usize),
    #[error("--batch-size must be at least 1")]
    BatchSize,
    #[error("--hidden must be between 1 and {max} (the widest layer an artifact holds), got {0}", max = crate::limits::MAX_WIDTH)]
    Hidden(usize),
    #[error("a {widths} model has {parameters} weights and biases, more than an artifact holds ({max}): use narrower --hidden layers", max = crate::limits::MAX_PARAMETERS)]
    TooManyParameters { widths: String, parameters: String },
    #[error("--hidden lists {0} hidden layers: give 1 to {max} (an artifact holds {layers} layers with the output)", max = crate::limits::MAX_LAYERS - 1, layers = crate::limits::MAX_LAYERS)]
    Depth(usize),
    #[error("--dropout gives {given} rates for {hidden} hidden layers: give one rate for every layer, or one per hidden layer")]
    DropoutCount { given: usize, hidden: usize },
    #[error("--lr must be a positive number, got {0}")]
    LearningRate(f64),
    #[error("--dropout must be in [0, 1), got {0}")]
    Dropout(f32),
    #[error("--l2 must be a non-negative number, got {0}")]
    L2(f64),
    #[error("--l2-layers must name at least one of hidden, output, hidden1, hidden2, ...")]
    L2Layers,
    #[error("--l2-layers: unknown layer `{0}` (use hidden, output, or hidden1 to hidden<N> for N hidden layers)")]
    UnknownL2Layer(String),
    #[error(
        "--l2, --dropout and --weight-decay are separate models: give at most one (compare trains them side by side)"
    )]
    SeveralRegularizers,
    #[error("--weight-decay must be a non-negative number, got {0}")]
    WeightDecay(f64),
    #[error("--early-stopping (the patience, in epochs) must be at least 1")]
    Patience,
    #[error("--activation {0} is not a hidden layer's: use relu, tanh, sigmoid or hard-sigmoid")]
    Activation(Activation),
    #[error(transparent)]
    Augment(#[from] AugmentError),
    #[error(transparent)]
    Layers(#[from] crate::train::features::LayersError),
    #[error("--dropout goes after a hidden Dense layer, and --layers lists none: add one before the output (e.g. flatten,dense128,dense10)")]
    DropoutWithoutHidden,
}

impl TrainConfig {
    /// The model's name, also its run directory: the regularizer's (`base`, `l2`, `dropout`,
    /// `weight-decay`), `augment` for augmentation alone, `dropout-augment` and so on for both.
    pub fn model_name(&self) -> String {
        let mut name = match (&self.regularizer, self.augment.is_active(), self.batch_norm) {
            (Regularizer::None, false, true) => return "batchnorm".to_string(),
            (_, false, _) => self.regularizer.model_name().to_string(),
            (Regularizer::None, true, _) => "augment".to_string(),
            (r, true, _) => format!("{}-augment", r.model_name()),
        };
        if self.batch_norm {
            name.push_str("-batchnorm");
        }
        name
    }

    /// The regularizer, the augmentation and a BatchNorm, in words (for reports and provenance).
    pub fn regularization(&self) -> String {
        let mut text = match (&self.regularizer, self.augment.is_active()) {
            (_, false) => self.regularizer.to_string(),
            (Regularizer::None, true) => self.augment.to_string(),
            (r, true) => format!("{r}; {}", self.augment),
        };
        if self.batch_norm {
            let bn = if self.features.is_some() {
                "BatchNorm (momentum 0.99, epsilon 1e-3) after each convolution and hidden Dense"
            } else {
                "BatchNorm (momentum 0.99, epsilon 1e-3) after each hidden Dense"
            };
            text = if self.regularizer == Regularizer::None && !self.augment.is_active() {
                bn.to_string()
            } else {
                format!("{text}; {bn}")
            };
        }
        text
    }

    /// What to change when training diverges: the regularizer's strength when it is large, else
    /// the learning rate.
    pub fn divergence_hint(&self) -> &'static str {
        match self.regularizer {
            Regularizer::L2 { lambda, .. } if lambda >= 1.0 => "try a lower --l2",
            Regularizer::WeightDecay { decay } if decay >= 1.0 => "try a lower --weight-decay",
            _ => "try a lower --lr",
        }
    }

    /// What every model of `seed` shares ([`Prepared::for_seed`]) for the network this describes:
    /// an MLP of its hidden widths, or its convolutional layer list.
    pub fn prepared(
        &self,
        data: &Dataset,
        spec: crate::train::prepare::SplitSpec,
        seed: u64,
    ) -> anyhow::Result<Prepared> {
        match &self.features {
            Some(features) => {
                let list = features.list(self.activation)?;
                let front = Some((features.image(), &list.front[..]));
                Prepared::for_model(data, spec, seed, front, &self.hidden, self.task)
            }
            None => Prepared::for_seed(data, spec, seed, &self.hidden, self.task),
        }
    }

    /// Checks every value before anything is trained or written.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=crate::limits::MAX_EPOCHS).contains(&self.epochs) {
            return Err(ConfigError::Epochs(self.epochs));
        }
        if self.batch_size == 0 {
            return Err(ConfigError::BatchSize);
        }
        let front = match &self.features {
            Some(features) => {
                let list = features.list(self.activation)?;
                if list.hidden != self.hidden {
                    let (listed, hidden) = (list.hidden.len(), self.hidden.len());
                    return Err(ConfigError::Layers(crate::train::features::LayersError::Shape(format!(
                        "the list has {listed} hidden Dense layers, the configuration {hidden}"
                    ))));
                }
                list.front.len()
            }
            None => 0,
        };
        let least = if self.features.is_some() { 0 } else { 1 };
        if !(least..crate::limits::MAX_LAYERS - front).contains(&self.hidden.len()) {
            return Err(ConfigError::Depth(self.hidden.len()));
        }
        if self.hidden.is_empty() && matches!(self.regularizer, Regularizer::Dropout { .. }) {
            return Err(ConfigError::DropoutWithoutHidden);
        }
        if let Some(width) = self.hidden.iter().find(|w| !(1..=crate::limits::MAX_WIDTH).contains(*w)) {
            return Err(ConfigError::Hidden(*width));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(ConfigError::LearningRate(self.lr));
        }
        if self.early_stopping == Some(0) {
            return Err(ConfigError::Patience);
        }
        if !crate::train::model::HIDDEN_ACTIVATIONS.contains(&self.activation) {
            return Err(ConfigError::Activation(self.activation));
        }
        let hidden = self.hidden.len();
        match &self.regularizer {
            Regularizer::Dropout { rates } if rates.len() != 1 && rates.len() != hidden => {
                Err(ConfigError::DropoutCount { given: rates.len(), hidden })
            }
            Regularizer::Dropout { rates } => match rates.iter().find(|r| !(0.0..1.0).contains(*r)) {
                Some(rate) => Err(ConfigError::Dropout(*rate)),
                None => Ok(()),
            },
            Regularizer::L2 { lambda, .. } if !(*lambda >= 0.0 && lambda.is_finite()) => Err(ConfigError::L2(*lambda)),
            Regularizer::L2 { layers, .. } if layers.names().is_empty() => Err(ConfigError::L2Layers),
            Regularizer::L2 { layers, .. } => match layers.numbered.iter().find(|n| **n > hidden) {
                Some(n) => Err(ConfigError::UnknownL2Layer(format!("hidden{n}"))),
                None => Ok(()),
            },
            Regularizer::WeightDecay { decay } if !(*decay >= 0.0 && decay.is_finite()) => {
                Err(ConfigError::WeightDecay(*decay))
            }
            _ => Ok(()),
        }
    }

    /// Checks that the model this configuration trains on `inputs` features and `classes`
    /// classes fits an artifact ([`crate::limits::MAX_PARAMETERS`] weights and biases), before
    /// any training time is spent on it.
    pub fn check_size(&self, inputs: usize, classes: usize) -> Result<(), ConfigError> {
        // a convolutional front: its parameters, and the values its last map gives the Dense layers
        let (inputs, front) = match &self.features {
            Some(features) => {
                let list = features.list(self.activation)?;
                let mut map = features.image();
                let mut parameters = 0;
                for shape in &list.front {
                    parameters += shape.parameters(map);
                    map = shape.output_dims(map).unwrap_or(map);
                }
                if list.outputs != classes {
                    return Err(ConfigError::Layers(crate::train::features::LayersError::Shape(format!(
                        "the last layer is the output: dense{classes} for this task, not dense{}",
                        list.outputs
                    ))));
                }
                (map.len(), parameters)
            }
            None => (inputs, 0),
        };
        let widths: Vec<usize> = std::iter::once(inputs).chain(self.hidden.iter().copied()).chain([classes]).collect();
        let parameters = widths.windows(2).try_fold(front, |n, w| {
            w[0].checked_mul(w[1]).and_then(|p| p.checked_add(w[1])).and_then(|p| n.checked_add(p))
        });
        match parameters {
            Some(n) if n <= crate::limits::MAX_PARAMETERS => Ok(()),
            _ => Err(ConfigError::TooManyParameters {
                widths: widths.iter().map(usize::to_string).collect::<Vec<_>>().join("-"),
                parameters: parameters.map_or("more than 2^64".into(), |n| n.to_string()),
            }),
        }
    }
}

/// What one epoch measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches, with the L2 term (Keras's `loss`).
    pub train_loss: f64,
    /// The same without the L2 term: the task's loss only ([`crate::train::task::loss_name`]).
    #[serde(alias = "train_cross_entropy")]
    pub train_data_loss: f64,
    /// The task's score ([`crate::train::task::score_name`]: accuracy, or R²) over the epoch's
    /// batches as trained (dropout on), Keras's `accuracy`.
    #[serde(alias = "train_accuracy_running")]
    pub train_score_running: f64,
    /// The score on the train rows in inference mode after the epoch (on an evenly spaced sample
    /// of [`TRAIN_ACCURACY_ROWS`] of them when there are more: a full pass would cost a third of
    /// an epoch on large data).
    #[serde(alias = "train_accuracy")]
    pub train_score: f64,
    /// The task's loss on the validation rows in inference mode (no regularization term).
    pub val_loss: f64,
    /// The validation score.
    #[serde(alias = "val_accuracy")]
    pub val_score: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
}

/// Most train rows the per-epoch inference-mode train accuracy is measured on.
pub const TRAIN_ACCURACY_ROWS: usize = 10_000;

/// A finished run.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The final weights (the best ones when early stopping restored them).
    pub weights: Weights,
    /// One record per epoch run.
    pub history: Vec<EpochRecord>,
    /// Epoch (1-based) with the lowest validation loss.
    pub best_epoch: usize,
    /// Total wall time.
    pub seconds: f64,
    /// True when early stopping put the best epoch's weights back.
    pub restored_best: bool,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("training diverged: the loss is not finite in epoch {epoch}; nothing was written ({hint})")]
    NonFiniteLoss { epoch: usize, hint: &'static str },
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Trains one model on `data` from `initial` weights, calling `on_epoch` after every epoch (the
/// command line shows progress through it).
pub fn train(
    data: &Prepared,
    config: &TrainConfig,
    initial: &Weights,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<Trained, TrainError> {
    config.validate()?;
    let device = Device::Cpu;
    let initial = &initial.with_hidden(config.activation, config.batch_norm);
    let model = Mlp::new(initial, &device)?;
    let decayed = match config.regularizer {
        Regularizer::WeightDecay { decay } => decay,
        _ => 0.0,
    };
    let adam =
        AdamConfig { lr: config.lr, weight_decay: decayed, decayed_vars: model.kernels(), ..AdamConfig::default() };
    let mut optimizer = KerasAdam::new(model.vars(), adam)?;
    optimizer.set_l2(&l2_coefficients(&config.regularizer, model.front_kernels(), model.depth()));
    let mut shuffle = stream(config.seed, Stream::Shuffle);
    let mut dropout_rng = stream(config.seed, Stream::Dropout);
    let mut augment_rng = stream(config.seed, Stream::Augment);
    config.augment.validate(data.input).map_err(ConfigError::from)?;
    let (task, outputs) = (data.task, data.outputs);
    let (x_train, y_train, t_train) = (&data.train.x, &data.train.labels, &data.train.targets);
    let n = data.train.len();
    // The rows the per-epoch train score is measured on: all, or an evenly spaced sample.
    let sample: Option<Vec<u32>> = (n > TRAIN_ACCURACY_ROWS)
        .then(|| (0..TRAIN_ACCURACY_ROWS).map(|i| (i * n / TRAIN_ACCURACY_ROWS) as u32).collect());
    // The batches are gathered on the host from the train tensor's own storage (no copy of it).
    let (storage, layout) = x_train.storage_and_layout();
    let train_values = match &*storage {
        candle_core::Storage::Cpu(cpu) if layout.is_contiguous() => &cpu.as_slice::<f32>()?[layout.start_offset()..],
        _ => {
            return Err(TrainError::Candle(candle_core::Error::Msg(
                "the train rows are not a contiguous CPU tensor".into(),
            )))
        }
    };
    let mut order: Vec<usize> = (0..n).collect();
    // A batch larger than the training rows is all of them (as Keras does): nothing is allocated
    // for rows that do not exist.
    let batch_size = config.batch_size.min(n.max(1));
    let mut xb = Vec::with_capacity(batch_size * data.input);
    let mut yb = Vec::with_capacity(batch_size);
    let mut tb = Vec::with_capacity(if t_train.is_empty() { 0 } else { batch_size * outputs });
    let hidden = initial.hidden();
    let mut history = Vec::new();
    // (val loss, epoch) of the best epoch so far, and its weights when early stopping may restore them.
    let (mut best_loss, mut best_epoch, mut best_weights) = (f64::INFINITY, 0, None);
    let started = Instant::now();
    for epoch in 1..=config.epochs {
        let epoch_start = Instant::now();
        order.shuffle(&mut shuffle);
        let (mut loss_sum, mut data_loss_sum, mut score_sum) = (0.0, 0.0, 0.0);
        for batch in order.chunks(batch_size) {
            xb.clear();
            yb.clear();
            tb.clear();
            for r in batch {
                xb.extend_from_slice(&train_values[r * data.input..(r + 1) * data.input]);
                if !y_train.is_empty() {
                    yb.push(y_train[*r]);
                }
                if !t_train.is_empty() {
                    // an autoencoder's target is the clean input, whatever augmentation does to xb
                    tb.extend_from_slice(&t_train[r * outputs..(r + 1) * outputs]);
                }
            }
            if config.augment.is_active() {
                config.augment.apply(&mut xb, &data.standardization, &mut augment_rng);
            }
            let x = Tensor::from_slice(&xb, (batch.len(), data.input), &device)?;
            let masks = hidden
                .iter()
                .enumerate()
                .map(|(i, width)| match config.regularizer.dropout_rate(i) {
                    rate if rate > 0.0 => dropout_mask(batch.len(), *width, rate, &mut dropout_rng, &device).map(Some),
                    _ => Ok(None),
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            let raw = model.forward_raw(&x, Some(&masks))?;
            let loss = if task == Task::Classify {
                task::loss(task, &raw, BatchTargets::Classes(&Tensor::from_slice(&yb, batch.len(), &device)?))?
            } else {
                task::loss(
                    task,
                    &raw,
                    BatchTargets::Values(&Tensor::from_slice(&tb, (batch.len(), outputs), &device)?),
                )?
            };
            // What is recorded is computed once, on the host, from the batch's raw outputs; the
            // loss operation above is what the gradient flows through.
            let (batch_loss, batch_score) =
                task::loss_and_score(task, &raw.flatten_all()?.to_vec1::<f32>()?, outputs, &yb, &tb);
            // the L2 term, if any, is the optimizer's: its gradient joins the step, its value at
            // the weights this batch ran with comes back
            optimizer.backward_step(&loss)?;
            let penalty_value = optimizer.penalty();
            if !(batch_loss + penalty_value).is_finite() {
                return Err(TrainError::NonFiniteLoss { epoch, hint: config.divergence_hint() });
            }
            let b = batch.len() as f64;
            loss_sum += (batch_loss + penalty_value) * b;
            data_loss_sum += batch_loss * b;
            score_sum += batch_score * b;
        }
        let (_, train_score) = measure(&model, &data.train, sample.as_deref(), task, outputs)?;
        let (val_loss, val_score) = measure(&model, &data.val, None, task, outputs)?;
        if !val_loss.is_finite() {
            return Err(TrainError::NonFiniteLoss { epoch, hint: config.divergence_hint() });
        }
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / n as f64,
            train_data_loss: data_loss_sum / n as f64,
            train_score_running: score_sum / n as f64,
            train_score,
            val_loss,
            val_score,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        on_epoch(&record);
        history.push(record);
        if val_loss < best_loss {
            (best_loss, best_epoch) = (val_loss, epoch);
            if config.early_stopping.is_some() {
                best_weights = Some(model.weights()?);
            }
        }
        if config.early_stopping.is_some_and(|patience| epoch - best_epoch >= patience) {
            break;
        }
    }
    let weights = match best_weights {
        Some(best) => {
            model.set(&best)?;
            best
        }
        None => model.weights()?,
    };
    Ok(Trained {
        weights,
        history,
        best_epoch,
        seconds: started.elapsed().as_secs_f64(),
        restored_best: config.early_stopping.is_some(),
    })
}

/// The L2 coefficient of every variable of an [`Mlp`] of `convolutions` convolution kernels and
/// `depth` Dense layers, in [`Mlp::vars`] order (kernels, then biases): `lambda` on the kernels
/// the regularizer names (the convolutions count as hidden), 0 elsewhere (biases are never
/// penalized). The penalty is `lambda * sum(w^2)`, as Keras's `l2(lambda)`.
pub fn l2_coefficients(regularizer: &Regularizer, convolutions: usize, depth: usize) -> Vec<f32> {
    let lambda = |applies: bool| match regularizer {
        Regularizer::L2 { lambda, .. } if applies => *lambda as f32,
        _ => 0.0,
    };
    let hidden = matches!(regularizer, Regularizer::L2 { layers, .. } if layers.hidden);
    let front = std::iter::repeat_n(lambda(hidden), convolutions);
    let dense =
        (0..depth).map(|i| lambda(matches!(regularizer, Regularizer::L2 { layers, .. } if layers.applies(i, depth))));
    front.chain(dense).chain(std::iter::repeat_n(0.0, convolutions + depth)).collect()
}

/// The task's loss and score of `weights` on standardized rows of `prepared`'s task, inference
/// mode.
pub fn evaluate(weights: &Weights, prepared: &Prepared, rows: &Rows) -> Result<(f64, f64), candle_core::Error> {
    let model = Mlp::new(weights, &Device::Cpu)?;
    measure(&model, rows, None, prepared.task, prepared.outputs)
}

/// The raw outputs (inference mode, before the last activation) of `weights` on `rows` of `data`,
/// standardized a chunk at a time (a large part is never held standardized as a whole), row-major.
pub fn raw_outputs(
    weights: &Weights,
    prepared: &Prepared,
    data: &Dataset,
    rows: &[usize],
) -> Result<Vec<f32>, candle_core::Error> {
    let model = Mlp::new(weights, &Device::Cpu)?;
    let mut raw = Vec::with_capacity(rows.len() * prepared.outputs);
    for chunk in rows.chunks(EVALUATION_CHUNK) {
        raw.extend(logits(&model, &prepared.standardized(data, chunk)?.x)?);
    }
    Ok(raw)
}

/// The task's loss and score of `weights` on the test rows of `data`.
pub fn evaluate_test(weights: &Weights, prepared: &Prepared, data: &Dataset) -> Result<(f64, f64), candle_core::Error> {
    let test = &prepared.split.test;
    let raw = raw_outputs(weights, prepared, data, test)?;
    let labels: Vec<u32> = if data.labels.is_empty() { vec![] } else { test.iter().map(|r| data.labels[*r]).collect() };
    let targets = match prepared.task {
        Task::Classify => vec![],
        _ => test
            .chunks(EVALUATION_CHUNK)
            .map(|c| prepared.standardized(data, c).map(|r| r.targets))
            .collect::<Result<Vec<_>, _>>()?
            .concat(),
    };
    Ok(task::loss_and_score(prepared.task, &raw, prepared.outputs, &labels, &targets))
}

/// Rows run through the model at once when measuring: bounds the activations a measurement holds.
const EVALUATION_CHUNK: usize = 1024;

/// The task's loss and score (inference mode) on `rows`, or on rows `which` of them, a chunk at a
/// time (all rows are viewed in place; chosen rows are gathered chunk by chunk); the score is
/// computed over all of them at once (R² is not a mean of chunks').
fn measure(
    model: &Mlp,
    rows: &Rows,
    which: Option<&[u32]>,
    task: Task,
    outputs: usize,
) -> Result<(f64, f64), candle_core::Error> {
    let n = which.map_or(rows.len(), <[u32]>::len);
    let (mut raw, mut labels, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for start in (0..n).step_by(EVALUATION_CHUNK) {
        let len = EVALUATION_CHUNK.min(n - start);
        let chunk: Vec<usize> = match which {
            None => (start..start + len).collect(),
            Some(which) => which[start..start + len].iter().map(|r| *r as usize).collect(),
        };
        let x = match which {
            None => rows.x.narrow(0, start, len)?,
            Some(which) => {
                rows.x.index_select(&Tensor::from_slice(&which[start..start + len], len, rows.x.device())?, 0)?
            }
        };
        raw.extend(logits(model, &x)?);
        if !rows.labels.is_empty() {
            labels.extend(chunk.iter().map(|r| rows.labels[*r]));
        }
        if !rows.targets.is_empty() {
            targets.extend(chunk.iter().flat_map(|r| rows.targets[r * outputs..(r + 1) * outputs].iter().copied()));
        }
    }
    Ok(task::loss_and_score(task, &raw, outputs, &labels, &targets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_flag_is_refused_by_name() {
        let ok = TrainConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let bad = |c: TrainConfig| c.validate().unwrap_err().to_string();
        assert!(bad(TrainConfig { epochs: 0, ..ok.clone() }).contains("--epochs"));
        assert!(bad(TrainConfig { batch_size: 0, ..ok.clone() }).contains("--batch-size"));
        assert!(bad(TrainConfig { lr: 0.0, ..ok.clone() }).contains("--lr"));
        assert!(bad(TrainConfig { lr: -1.0, ..ok.clone() }).contains("--lr"));
        for rate in [1.0, -0.1, 1.5, f32::NAN] {
            let regularizer = Regularizer::Dropout { rates: vec![rate] };
            assert!(bad(TrainConfig { regularizer, ..ok.clone() }).contains("--dropout"));
        }
        let layers = L2Layers::all();
        let l2 = |lambda, layers| Regularizer::L2 { lambda, layers };
        assert!(bad(TrainConfig { regularizer: l2(-1e-3, layers.clone()), ..ok.clone() }).contains("--l2"));
        let deep = TrainConfig { hidden: vec![64, 32], ..ok.clone() };
        assert_eq!(deep.validate(), Ok(()));
        let three = Regularizer::Dropout { rates: vec![0.5, 0.2, 0.1] };
        assert_eq!(
            bad(TrainConfig { regularizer: three, ..deep.clone() }),
            "--dropout gives 3 rates for 2 hidden layers: give one rate for every layer, or one per hidden layer"
        );
        let per_layer = Regularizer::Dropout { rates: vec![0.5, 0.2] };
        assert_eq!(TrainConfig { regularizer: per_layer.clone(), ..deep.clone() }.validate(), Ok(()));
        assert_eq!((per_layer.dropout_rate(0), per_layer.dropout_rate(1)), (0.5, 0.2));
        let hidden3 = L2Layers::parse(&["hidden3".into()]).unwrap();
        assert!(bad(TrainConfig { regularizer: l2(1e-3, hidden3), ..deep.clone() }).contains("unknown layer `hidden3`"));
        assert!(L2Layers::parse(&["hidden0".into()]).is_err());
        assert!(bad(TrainConfig { hidden: vec![], ..ok.clone() }).contains("--hidden lists 0 hidden layers"));
        assert!(bad(TrainConfig { hidden: vec![8; 32], ..ok.clone() }).contains("give 1 to 31"));
        assert_eq!(TrainConfig { hidden: vec![8; 31], ..ok.clone() }.validate(), Ok(()));
        assert!(bad(TrainConfig { activation: Activation::Softmax, ..ok.clone() }).contains("--activation softmax"));
        assert!(bad(TrainConfig { early_stopping: Some(0), ..ok.clone() }).contains("--early-stopping"));
        let huge = TrainConfig { hidden: vec![16, 100_000_000], ..ok.clone() };
        assert!(bad(huge)
            .contains("--hidden must be between 1 and 4096 (the widest layer an artifact holds), got 100000000"));
        assert!(bad(TrainConfig { epochs: usize::MAX, ..ok.clone() }).contains("--epochs"));
        let strong = TrainConfig { regularizer: l2(1e30, layers), ..ok.clone() };
        assert_eq!(strong.divergence_hint(), "try a lower --l2");
        assert_eq!(ok.divergence_hint(), "try a lower --lr");
    }

    #[test]
    fn every_regularizer_reads_back_from_its_json() {
        let layers = L2Layers { hidden: true, output: false, numbered: vec![] };
        let numbered = L2Layers { hidden: false, output: true, numbered: vec![2] };
        for r in [
            Regularizer::None,
            Regularizer::L2 { lambda: 1e-3, layers },
            Regularizer::L2 { lambda: 1e-3, layers: numbered },
            Regularizer::Dropout { rates: vec![0.5] },
            Regularizer::Dropout { rates: vec![0.5, 0.25] },
            Regularizer::WeightDecay { decay: 0.01 },
        ] {
            let config = TrainConfig { regularizer: r, early_stopping: Some(3), ..TrainConfig::default() };
            let json = serde_json::to_string(&config).unwrap();
            assert!(json.contains("\"kind\""), "{json}");
            assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), config, "{json}");
        }
        let bad = r#"{"kind":"dropout"}"#;
        assert!(serde_json::from_str::<Regularizer>(bad).unwrap_err().to_string().contains("needs `rates`"));
        // Runs written before deeper networks: one rate, one hidden width.
        let old = r#"{"kind":"dropout","rate":0.5}"#;
        assert_eq!(serde_json::from_str::<Regularizer>(old).unwrap(), Regularizer::Dropout { rates: vec![0.5] });
        // the task and the activation read back by name; a newer one is refused by name; runs
        // written before them are the course's classifier with ReLU
        let config = TrainConfig { task: Task::Regress, activation: Activation::Tanh, ..TrainConfig::default() };
        let mut json = serde_json::to_value(&config).unwrap();
        assert_eq!((json["task"].as_str(), json["activation"].as_str()), (Some("regress"), Some("tanh")));
        assert_eq!(serde_json::from_value::<TrainConfig>(json.clone()).unwrap(), config);
        json["task"] = serde_json::json!("segment");
        let e = serde_json::from_value::<TrainConfig>(json.clone()).unwrap_err().to_string();
        assert!(e.contains("task `segment` is not one this dropship knows"), "{e}");
        json.as_object_mut().unwrap().remove("task");
        json.as_object_mut().unwrap().remove("activation");
        let old = serde_json::from_value::<TrainConfig>(json).unwrap();
        assert_eq!((old.task, old.activation), (Task::Classify, Activation::Relu));
        let mut json = serde_json::to_value(TrainConfig::default()).unwrap();
        json["hidden"] = serde_json::json!(96);
        assert_eq!(serde_json::from_value::<TrainConfig>(json).unwrap().hidden, vec![96]);
    }

    #[test]
    fn l2_falls_on_the_named_kernels_only() {
        let l2 =
            |hidden, output| Regularizer::L2 { lambda: 0.5, layers: L2Layers { hidden, output, numbered: vec![] } };
        // two layers: kernels then biases
        assert_eq!(l2_coefficients(&l2(true, false), 0, 2), vec![0.5, 0.0, 0.0, 0.0]);
        assert_eq!(l2_coefficients(&l2(false, true), 0, 2), vec![0.0, 0.5, 0.0, 0.0]);
        assert_eq!(l2_coefficients(&l2(true, true), 0, 3), vec![0.5, 0.5, 0.5, 0.0, 0.0, 0.0]);
        let third = Regularizer::L2 { lambda: 0.25, layers: L2Layers::parse(&["hidden2".into()]).unwrap() };
        assert_eq!(l2_coefficients(&third, 0, 3), vec![0.0, 0.25, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(l2_coefficients(&Regularizer::Dropout { rates: vec![0.5] }, 0, 2), vec![0.0; 4]);
        // a CNN's two convolutions count as hidden kernels
        assert_eq!(l2_coefficients(&l2(true, false), 2, 1), vec![0.5, 0.5, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(l2_coefficients(&l2(false, true), 2, 1), vec![0.0, 0.0, 0.5, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn augmentation_changes_training_only_and_is_reproducible_from_the_seed() {
        let data = crate::data::load_csv(crate::data::BUNDLED_DIGITS.as_ref(), &Default::default(), Default::default())
            .unwrap();
        let prepared =
            Prepared::for_seed(&data, crate::train::prepare::SplitSpec::default(), 0, &[32], Task::Classify).unwrap();
        let augment = Augment { noise: 0.2, shift: 1, image: Some(crate::data::augment::ImageShape::DIGITS) };
        let config = TrainConfig { hidden: vec![32], epochs: 3, augment, ..TrainConfig::default() };
        assert_eq!(config.model_name(), "augment");
        let run = || train(&prepared, &config, &prepared.initial, &mut |_| {}).unwrap();
        let (a, b) = (run(), run());
        assert_eq!(a.weights, b.weights, "the seed decides every draw");
        let plain = TrainConfig { augment: Augment::default(), ..config.clone() };
        let c = train(&prepared, &plain, &prepared.initial, &mut |_| {}).unwrap();
        assert_ne!(a.weights, c.weights, "augmentation changes what the steps see");
        // The recorded validation loss is that of the clean validation rows.
        let (val_loss, val_score) = evaluate(&a.weights, &prepared, &prepared.val).unwrap();
        let last = a.history.last().unwrap();
        assert_eq!((last.val_loss, last.val_score), (val_loss, val_score));
        let other_seed = TrainConfig { seed: 1, ..config.clone() };
        let d = train(&prepared, &other_seed, &prepared.initial, &mut |_| {}).unwrap();
        assert_ne!(a.weights, d.weights, "another seed draws other noise and shifts");
    }

    #[test]
    fn early_stopping_stops_after_patience_and_restores_the_best_weights() {
        let data = crate::data::load_csv(crate::data::BUNDLED_DIGITS.as_ref(), &Default::default(), Default::default())
            .unwrap();
        let prepared =
            Prepared::for_seed(&data, crate::train::prepare::SplitSpec::default(), 0, &[128], Task::Classify).unwrap();
        // a high learning rate overfits fast, so the validation loss turns up early
        let config = TrainConfig { epochs: 60, lr: 0.02, early_stopping: Some(4), ..TrainConfig::default() };
        let t = train(&prepared, &config, &prepared.initial, &mut |_| {}).unwrap();
        assert!(t.history.len() < 60, "stopped early: {} epochs", t.history.len());
        assert_eq!(t.history.len(), t.best_epoch + 4, "stops `patience` epochs after the best");
        let (val_loss, _) = evaluate(&t.weights, &prepared, &prepared.val).unwrap();
        let best = t.history[t.best_epoch - 1].val_loss;
        assert!((val_loss - best).abs() < 1e-9, "restored weights give the best epoch's loss: {val_loss} vs {best}");
        assert!(t.restored_best);
    }
}
