//! Model files: serde JSON with a format version, the feature schema
//! (version and names), class names and a training summary.

use serde::{Deserialize, Serialize};

use flow::{AppInfo, FlowRecord};

use crate::evidence::{evidence_feature_names, TokenEvidence};
use crate::features::{
    evidence_tokens, flow_feature_names, flow_features, flow_features_named_into,
    packet_feature_names, NameFeatures, FEATURE_SCHEMA_VERSION,
};
use crate::flat::TreeEnsemble;
use crate::models::{Classifier, Model};
use crate::tree::Tree;
use crate::{ClassifyError, Result};

/// Version of the file layout. 2: tree ensembles stored flattened
/// ([`crate::flat::TreeEnsemble`]); version 1 files (one object per tree
/// node) are converted when loaded.
pub const MODEL_FORMAT_VERSION: u32 = 2;
const FORMAT: &str = "trafficscope-classify-model";

/// Weight of the catalogue's likelihood ratio in models trained with token
/// evidence: 1, the plain naive-Bayes product.
pub const CATALOGUE_WEIGHT: f32 = 1.0;

/// The part of a flow's model row that comes from its names and
/// application facts, kept between predictions of one open flow
/// ([`ModelFile::flow_row_cached`]). Valid for one flow (its ports and
/// protocol) and one model.
#[derive(Debug, Clone, Default)]
pub struct RowNameCache {
    /// The facts the rest was computed from.
    app: Option<AppInfo>,
    names: NameFeatures,
    evidence: Vec<f32>,
}

/// Name features and evidence already computed for application facts,
/// shared by every flow one classifier judges. Most flows repeat the facts
/// of others (a service's many connections: the same names, service,
/// protocols and port), and deriving them is string work (tokens, keyword
/// and catalogue lookups) that cost as much as the rest of the row.
/// Bounded: emptied when it holds [`NameMemo::MAX`] entries.
#[derive(Debug, Default)]
pub struct NameMemo {
    /// Hash of the facts → entries with that hash.
    map: std::collections::HashMap<u64, Vec<MemoEntry>>,
    len: usize,
}

#[derive(Debug)]
struct MemoEntry {
    app: AppInfo,
    protocol: u8,
    port: u16,
    names: NameFeatures,
    evidence: Vec<f32>,
}

impl NameMemo {
    /// Entries kept at most (each a few hundred bytes).
    pub const MAX: usize = 4096;

    /// What the names, protocol and lower port of `rec` give (everything
    /// [`NameFeatures::of`] and the evidence tokens read).
    fn key(rec: &FlowRecord) -> (u8, u16) {
        (rec.protocol, rec.src_port.min(rec.dst_port))
    }

    fn hash(rec: &FlowRecord) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let a = &rec.app;
        Self::key(rec).hash(&mut h);
        a.service.hash(&mut h);
        a.detected.hash(&mut h);
        a.tls_sni.hash(&mut h);
        a.tls_alpn.hash(&mut h);
        a.dns_query.hash(&mut h);
        a.dns_qtype.hash(&mut h);
        a.http_host.hash(&mut h);
        a.quic_version.hash(&mut h);
        a.http_path.hash(&mut h);
        a.http_content_type.hash(&mut h);
        a.tls_cert_name.hash(&mut h);
        a.protocols.hash(&mut h);
        h.finish()
    }

    /// Memoised `(names, evidence)` of `rec`, computed by `make` when new.
    fn get(
        &mut self,
        rec: &FlowRecord,
        make: impl FnOnce() -> (NameFeatures, Vec<f32>),
    ) -> (&NameFeatures, &[f32]) {
        let h = Self::hash(rec);
        let (protocol, port) = Self::key(rec);
        if self.len >= Self::MAX {
            self.map.clear();
            self.len = 0;
        }
        let bucket = self.map.entry(h).or_default();
        // The whole facts are compared: a hash collision never mixes two flows.
        let at = match bucket
            .iter()
            .position(|e| e.protocol == protocol && e.port == port && e.app == rec.app)
        {
            Some(k) => k,
            None => {
                let (names, evidence) = make();
                bucket.push(MemoEntry {
                    app: rec.app.clone(),
                    protocol,
                    port,
                    names,
                    evidence,
                });
                self.len += 1;
                bucket.len() - 1
            }
        };
        let e = &bucket[at];
        (&e.names, &e.evidence)
    }
}

/// Applies the catalogue ratio to `p` for a row of flow features followed
/// by evidence features (the catalogue evidence comes first).
pub fn catalogue_adjust(p: &mut [f32], x: &[f32], weight: f32) {
    let d = crate::FLOW_FEATURE_COUNT;
    if let Some(ev) = x.get(d..d + p.len()) {
        crate::evidence::apply_catalogue(p, ev, weight);
    }
}

/// How a model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainingSummary {
    pub rows: u64,
    pub rows_per_class: Vec<u64>,
    pub groups: u64,
    pub seed: u64,
    pub train_s: f64,
    /// Free text: data sources, split, evaluation figures.
    pub notes: Vec<String>,
}

/// A trained model with everything needed to use it safely.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: String,
    pub format_version: u32,
    pub feature_schema_version: u32,
    /// "flow" (features of [`crate::flow_features`]) or "packet".
    pub feature_kind: String,
    pub feature_names: Vec<String>,
    pub class_names: Vec<String>,
    pub summary: TrainingSummary,
    pub model: Model,
    /// Learned token evidence, when the model was trained with it: its
    /// features follow the schema's flow features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<TokenEvidence>,
    /// Exponent of the catalogue's likelihood ratio applied to the model's
    /// flow probabilities ([`crate::evidence::apply_catalogue`]); 0 = off.
    #[serde(default)]
    pub catalogue_weight: f32,
    /// Calibration temperature fitted on held-out predictions
    /// ([`crate::calibration`]), applied last; 1 = as the learner says
    /// (files written before calibration existed).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub temperature: f32,
    /// Per-class decision weights fitted on held-out predictions
    /// ([`crate::calibration::fit_class_weights`]), applied before the
    /// temperature; empty = none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_weights: Vec<f32>,
}

fn one() -> f32 {
    1.0
}

fn is_one(t: &f32) -> bool {
    *t == 1.0
}

impl ModelFile {
    /// Wraps a trained flow model.
    pub fn flow(model: Model, class_names: Vec<String>, summary: TrainingSummary) -> Self {
        ModelFile {
            format: FORMAT.into(),
            format_version: MODEL_FORMAT_VERSION,
            feature_schema_version: FEATURE_SCHEMA_VERSION,
            feature_kind: "flow".into(),
            feature_names: flow_feature_names(),
            class_names,
            summary,
            model,
            evidence: None,
            catalogue_weight: 0.0,
            temperature: 1.0,
            class_weights: Vec::new(),
        }
    }

    /// Wraps a flow model trained on flow features followed by the
    /// features of `evidence` ([`crate::Dataset::training_rows`]).
    pub fn flow_with_evidence(
        model: Model,
        class_names: Vec<String>,
        summary: TrainingSummary,
        evidence: TokenEvidence,
    ) -> Self {
        let mut m = Self::flow(model, class_names, summary);
        m.feature_names
            .extend(evidence_feature_names(&m.class_names));
        m.evidence = Some(evidence);
        m.catalogue_weight = CATALOGUE_WEIGHT;
        m
    }

    /// Class probabilities of a flow row ([`flow_row`](Self::flow_row)):
    /// the model's, times the catalogue's likelihood ratio when the model
    /// carries token evidence, calibrated by the file's temperature.
    pub fn flow_proba(&self, x: &[f32]) -> Vec<f32> {
        let mut p = Vec::new();
        self.flow_proba_into(x, &mut p);
        p
    }

    /// [`flow_proba`](Self::flow_proba) into `p`, reusing its memory.
    pub fn flow_proba_into(&self, x: &[f32], p: &mut Vec<f32>) {
        p.clear();
        p.resize(self.model.n_classes(), 0.0);
        self.model.predict_proba_into(x, p);
        if self.evidence.is_some() {
            catalogue_adjust(p, x, self.catalogue_weight);
        }
        crate::calibration::apply_class_weights(p, &self.class_weights);
        crate::calibration::apply_temperature(p, self.temperature);
    }

    /// The model's input row for a (finished or partial) flow.
    pub fn flow_row(&self, rec: &FlowRecord) -> Vec<f32> {
        let mut x = flow_features(rec);
        if let Some(ev) = &self.evidence {
            x.extend(ev.features(&evidence_tokens(rec)));
        }
        x
    }

    /// [`flow_row`](Self::flow_row) for a flow that is judged again as it
    /// grows: what its names give (the costly string matching) is kept in
    /// `cache` and recomputed only when its application facts changed.
    /// `memo` holds what other flows' facts gave (one per model).
    pub fn flow_row_cached(
        &self,
        rec: &FlowRecord,
        cache: &mut RowNameCache,
        memo: &mut NameMemo,
    ) -> Vec<f32> {
        let mut x = Vec::with_capacity(self.feature_names.len());
        self.flow_row_cached_into(rec, cache, memo, &mut x);
        x
    }

    /// [`flow_row_cached`](Self::flow_row_cached) into `x` (cleared first).
    pub fn flow_row_cached_into(
        &self,
        rec: &FlowRecord,
        cache: &mut RowNameCache,
        memo: &mut NameMemo,
        x: &mut Vec<f32>,
    ) {
        if cache.app.as_ref() != Some(&rec.app) {
            let (names, evidence) = memo.get(rec, || {
                (
                    NameFeatures::of(&rec.app),
                    match &self.evidence {
                        Some(ev) => ev.features(&evidence_tokens(rec)),
                        None => Vec::new(),
                    },
                )
            });
            cache.names.clone_from(names);
            cache.evidence.clear();
            cache.evidence.extend_from_slice(evidence);
            cache.app = Some(rec.app.clone());
        }
        flow_features_named_into(rec, &cache.names, x);
        x.extend_from_slice(&cache.evidence);
    }

    /// Wraps a trained per-packet model.
    pub fn packet(model: Model, class_names: Vec<String>, summary: TrainingSummary) -> Self {
        ModelFile {
            feature_kind: "packet".into(),
            feature_names: packet_feature_names(),
            ..Self::flow(model, class_names, summary)
        }
    }

    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// Parses and checks the format version and feature schema against
    /// this build; a mismatch is an error naming both.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)?;
        let fmt = v.get("format").and_then(|f| f.as_str()).unwrap_or("");
        if fmt != FORMAT {
            return Err(ClassifyError::ModelFile(format!(
                "not a {FORMAT} file (format {fmt:?})"
            )));
        }
        let mut v = v;
        let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        let fv = num(&v, "format_version");
        if fv == 1 {
            upgrade_v1(&mut v)?;
        } else if fv != MODEL_FORMAT_VERSION as u64 {
            return Err(ClassifyError::ModelFile(format!(
                "model file format version {fv}, this build reads format version {MODEL_FORMAT_VERSION} (and converts version 1)"
            )));
        }
        let num = |k: &str| num(&v, k);
        let sv = num("feature_schema_version");
        if sv != FEATURE_SCHEMA_VERSION as u64 {
            return Err(ClassifyError::ModelFile(format!(
                "model file feature schema version {sv}, this build computes feature schema version {FEATURE_SCHEMA_VERSION}; retrain the model"
            )));
        }
        let m: ModelFile = serde_json::from_value(v)?;
        let expected = match m.feature_kind.as_str() {
            "flow" => {
                let mut n = flow_feature_names();
                if let Some(ev) = &m.evidence {
                    if ev.classes != m.class_names.len() {
                        return Err(ClassifyError::ModelFile(format!(
                            "token evidence for {} classes, the model has {}",
                            ev.classes,
                            m.class_names.len()
                        )));
                    }
                    n.extend(evidence_feature_names(&m.class_names));
                }
                n
            }
            "packet" => packet_feature_names(),
            k => {
                return Err(ClassifyError::ModelFile(format!(
                    "unknown feature kind {k:?}"
                )))
            }
        };
        if m.feature_names != expected {
            let first = m
                .feature_names
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(m.feature_names.len().min(expected.len()));
            return Err(ClassifyError::ModelFile(format!(
                "feature names differ from schema version {FEATURE_SCHEMA_VERSION} at index {first} (file {:?}, build {:?})",
                m.feature_names.get(first),
                expected.get(first)
            )));
        }
        let used = match &m.model {
            Model::Forest(f) => f.ensemble().n_features(),
            Model::Gbt(g) => g.ensemble().n_features(),
            Model::Mlp(_) => 0,
        };
        if used > m.feature_names.len() {
            return Err(ClassifyError::ModelFile(format!(
                "the trees use feature {} of {}",
                used - 1,
                m.feature_names.len()
            )));
        }
        Ok(m)
    }

    pub fn save(&self, path: &str) -> Result<()> {
        std::fs::write(path, self.to_json()?).map_err(|source| ClassifyError::Io {
            path: path.into(),
            source,
        })
    }

    pub fn load(path: &str) -> Result<Self> {
        let t = std::fs::read_to_string(path).map_err(|source| ClassifyError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_json(&t).map_err(|e| match e {
            ClassifyError::ModelFile(m) => ClassifyError::ModelFile(format!("{path}: {m}")),
            e => e,
        })
    }

    pub fn predict_proba(&self, x: &[f32]) -> Vec<f32> {
        self.model.predict_proba(x)
    }
}

/// Format version 1 stored each tree as a list of node objects; version 2
/// stores one flattened ensemble. Same trees, same predictions.
fn upgrade_v1(v: &mut serde_json::Value) -> Result<()> {
    let model = &mut v["model"];
    let kind = model.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if kind == "forest" || kind == "gbt" {
        let trees: Vec<Tree> = serde_json::from_value(model["trees"].take())?;
        if trees
            .iter()
            .any(|t| Some(t.width) != trees.first().map(|f| f.width))
        {
            return Err(ClassifyError::ModelFile(
                "version 1 trees of different leaf widths".into(),
            ));
        }
        for (i, t) in trees.iter().enumerate() {
            t.check()
                .map_err(|e| ClassifyError::ModelFile(format!("tree {i}: {e}")))?;
        }
        model["trees"] = serde_json::to_value(TreeEnsemble::from_trees(&trees))?;
    }
    v["format_version"] = serde_json::json!(MODEL_FORMAT_VERSION);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::TokenEvidence;
    use crate::models::{tests::blobs, ModelKind};
    use crate::FLOW_FEATURE_COUNT;

    #[test]
    fn round_trip_gives_identical_predictions_and_versions_are_checked() {
        let (x, y) = blobs(300, 5);
        let pad = |r: &Vec<f32>| {
            let mut r = r.clone();
            r.resize(FLOW_FEATURE_COUNT, 0.0);
            r
        };
        let x: Vec<Vec<f32>> = x.iter().map(pad).collect();
        for kind in ModelKind::ALL {
            let mut m = Model::new(kind, 1);
            match &mut m {
                Model::Forest(f) => f.params.n_trees = 10,
                Model::Gbt(g) => g.params.rounds = 10,
                Model::Mlp(g) => g.params.epochs = 5,
            }
            m.fit(&x, &y, 4, None).unwrap();
            let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
            let f = ModelFile::flow(m, names, TrainingSummary::default());
            let text = f.to_json().unwrap();
            let back = ModelFile::from_json(&text).unwrap();
            for r in &x {
                assert_eq!(f.predict_proba(r), back.predict_proba(r));
            }
            // Another schema version.
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["feature_schema_version"] = serde_json::json!(FEATURE_SCHEMA_VERSION + 1);
            let e = ModelFile::from_json(&v.to_string())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!(
                    "feature schema version {}",
                    FEATURE_SCHEMA_VERSION + 1
                )) && e.contains(&format!("feature schema version {FEATURE_SCHEMA_VERSION}")),
                "{e}"
            );
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["format_version"] = serde_json::json!(99);
            let e = ModelFile::from_json(&v.to_string())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("version 99") && e.contains(&format!("version {MODEL_FORMAT_VERSION}")),
                "{e}"
            );
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["feature_names"][3] = serde_json::json!("renamed");
            let e = ModelFile::from_json(&v.to_string())
                .unwrap_err()
                .to_string();
            assert!(e.contains("index 3"), "{e}");
        }
    }

    #[test]
    fn evidence_travels_with_the_model_and_must_match_its_classes() {
        let (x, y) = blobs(200, 3);
        let tokens: Vec<Vec<String>> = y
            .iter()
            .map(|&c| vec![format!("t{c}"), "common".into()])
            .collect();
        let idx: Vec<usize> = (0..y.len()).collect();
        let ev = TokenEvidence::fit(&tokens, &y, 4, &idx);
        let x: Vec<Vec<f32>> = x
            .iter()
            .zip(&tokens)
            .map(|(r, t)| {
                let mut r = r.clone();
                r.resize(FLOW_FEATURE_COUNT, 0.0);
                r.extend(ev.features(t));
                r
            })
            .collect();
        let mut m = Model::new(ModelKind::Forest, 1);
        if let Model::Forest(f) = &mut m {
            f.params.n_trees = 5;
        }
        m.fit(&x, &y, 4, None).unwrap();
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let f = ModelFile::flow_with_evidence(m, names, TrainingSummary::default(), ev.clone());
        assert_eq!(
            f.feature_names.len(),
            FLOW_FEATURE_COUNT + crate::evidence::evidence_feature_count(4)
        );
        let back = ModelFile::from_json(&f.to_json().unwrap()).unwrap();
        assert_eq!(back.evidence.as_ref(), Some(&ev));
        // Evidence counted for another number of classes is refused.
        let mut v: serde_json::Value = serde_json::from_str(&f.to_json().unwrap()).unwrap();
        v["evidence"]["classes"] = serde_json::json!(3);
        let e = ModelFile::from_json(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 classes") && e.contains("has 4"), "{e}");
        // Dropping the evidence leaves names the schema does not explain.
        let mut v: serde_json::Value = serde_json::from_str(&f.to_json().unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("evidence");
        assert!(ModelFile::from_json(&v.to_string()).is_err());
    }
}
