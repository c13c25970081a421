//! Traffic classification for trafficscope.
//!
//! * [`features`]: versioned flow features ([`flow_features`]) and a streaming
//!   per-packet featurizer ([`PacketFeaturizer`]).
//! * [`catalogue`]: domain suffixes of well-known services and their kind
//!   (video, audio, conferencing, messaging), for features that generalise.
//! * [`evidence`]: learned per-token class evidence (dense features that
//!   carry names and protocols seen in other captures).
//! * [`labels`]: ground truth from label CSVs (matched by five-tuple in either
//!   direction), per-capture labels and rules.
//! * [`dataset`]: datasets built from captures, grouped splits and k-fold.
//! * [`models`]: random forest, multiclass gradient-boosted trees (softmax) and
//!   an MLP behind one [`Classifier`] trait. All learners are implemented in
//!   this crate (no ML dependency) and are deterministic for a seed.
//! * [`metrics`]: accuracy, macro-F1, per-class scores, confusion matrix and a
//!   benchmark [`Report`].
//! * [`flat`]: tree ensembles flattened into one node array for fast
//!   inference (what model files store since format version 2).
//! * [`model_file`]: versioned JSON model files.
//! * [`crossval`]: grouped k-fold over seeds with held-out probabilities,
//!   bootstrap intervals over groups and the spread over seeds.
//! * [`calibration`]: temperature scaling, expected calibration error,
//!   reliability diagram, accuracy against coverage.
//! * [`streaming`]: early / per-packet classification and rolling accuracy.

pub mod calibration;
pub mod catalogue;
pub mod crossval;
pub mod dataset;
pub mod evidence;
pub mod features;
pub mod flat;
pub mod labels;
pub mod metrics;
pub mod model_file;
pub mod models;
pub mod rng;
pub mod streaming;
pub mod tree;

pub use dataset::{Dataset, DatasetBuilder, DatasetOptions, Split};
pub use features::{
    flow_feature_names, flow_features, packet_feature_names, PacketFeaturizer,
    FEATURE_SCHEMA_VERSION, FLOW_FEATURE_COUNT, PACKET_FEATURE_COUNT,
};
pub use labels::{LabelStats, Labels, Rule};
pub use metrics::{Evaluation, Report, ReportRow};
pub use model_file::{ModelFile, NameMemo, RowNameCache, TrainingSummary, MODEL_FORMAT_VERSION};
pub use models::{
    class_weights, Classifier, GbtParams, GradientBoosting, Mlp, MlpParams, Model, ModelKind,
    RandomForest, RfParams,
};
pub use streaming::{
    ClassTally, FlowVerdict, Outcome, PacketVerdict, Prediction, StreamingClassifier,
    StreamingConfig, WindowStats, WindowedEvaluator,
};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("capture {path}: {source}")]
    Capture {
        path: String,
        source: Box<capture::CaptureError>,
    },
    #[error("{path}:{line}: {msg}")]
    Csv {
        path: String,
        line: usize,
        msg: String,
    },
    #[error("bad rule {rule:?}: {msg}")]
    Rule { rule: String, msg: String },
    #[error("model file: {0}")]
    ModelFile(String),
    #[error("training: {0}")]
    Training(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = ClassifyError> = std::result::Result<T, E>;
