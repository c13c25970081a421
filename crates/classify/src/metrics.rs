//! Evaluation metrics and the benchmark report.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Precision / recall / F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Scores of predictions against truth. Predictions `>= n_classes` mean
/// `unknown`: they count as misses and get the last confusion column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub class_names: Vec<String>,
    pub n: u64,
    pub accuracy: f64,
    /// Mean F1 over classes present in the truth.
    pub macro_f1: f64,
    pub per_class: Vec<ClassScore>,
    /// `confusion[truth][predicted]`, with a last column for `unknown`.
    pub confusion: Vec<Vec<u64>>,
    pub unknown: u64,
}

impl Evaluation {
    pub fn new(class_names: &[String], truth: &[usize], pred: &[usize]) -> Self {
        let k = class_names.len();
        let mut cm = vec![vec![0u64; k + 1]; k];
        for (&t, &p) in truth.iter().zip(pred) {
            cm[t][p.min(k)] += 1;
        }
        Self::from_confusion(class_names, cm)
    }

    /// From a confusion matrix `k × (k + 1)` (last column: unknown) or `k × k`.
    pub fn from_confusion(class_names: &[String], mut cm: Vec<Vec<u64>>) -> Self {
        let k = class_names.len();
        for row in cm.iter_mut() {
            row.resize(k + 1, 0);
        }
        let n: u64 = cm.iter().flatten().sum();
        let correct: u64 = (0..k).map(|i| cm[i][i]).sum();
        let unknown: u64 = cm.iter().map(|r| r[k]).sum();
        let mut per_class = vec![];
        let mut f1s = vec![];
        for i in 0..k {
            let tp = cm[i][i] as f64;
            let support: u64 = cm[i].iter().sum();
            let predicted: u64 = cm.iter().map(|r| r[i]).sum();
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            if support > 0 {
                f1s.push(f1);
            }
            per_class.push(ClassScore {
                class: class_names[i].clone(),
                precision,
                recall,
                f1,
                support,
            });
        }
        Evaluation {
            class_names: class_names.to_vec(),
            n,
            accuracy: if n > 0 {
                correct as f64 / n as f64
            } else {
                0.0
            },
            macro_f1: if f1s.is_empty() {
                0.0
            } else {
                f1s.iter().sum::<f64>() / f1s.len() as f64
            },
            per_class,
            confusion: cm,
            unknown,
        }
    }

    /// Adds another evaluation's confusion matrix (same classes): pooled k-fold.
    pub fn merge(&self, other: &Evaluation) -> Evaluation {
        let cm = self
            .confusion
            .iter()
            .zip(&other.confusion)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x + y).collect())
            .collect();
        Evaluation::from_confusion(&self.class_names, cm)
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "accuracy {:.4}  macro-F1 {:.4}  n {}  unknown {}",
            self.accuracy, self.macro_f1, self.n, self.unknown
        )?;
        writeln!(
            f,
            "{:<12} {:>9} {:>9} {:>9} {:>8}",
            "class", "precision", "recall", "f1", "support"
        )?;
        for c in &self.per_class {
            writeln!(
                f,
                "{:<12} {:>9.3} {:>9.3} {:>9.3} {:>8}",
                c.class, c.precision, c.recall, c.f1, c.support
            )?;
        }
        write!(f, "confusion (rows truth, columns predicted")?;
        writeln!(f, ", last unknown):")?;
        for (name, row) in self.class_names.iter().zip(&self.confusion) {
            write!(f, "  {name:<10}")?;
            for v in row {
                write!(f, " {v:>6}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// One model's line of a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    pub model: String,
    pub eval: Evaluation,
    pub train_s: f64,
    /// Predictions per second (single thread).
    pub predictions_per_s: f64,
}

/// Benchmark of several models on the same split(s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Report {
    pub title: String,
    pub rows: Vec<ReportRow>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        let classes: Vec<String> = self
            .rows
            .first()
            .map(|r| r.eval.class_names.clone())
            .unwrap_or_default();
        write!(
            f,
            "{:<22} {:>8} {:>8} {:>9} {:>12}",
            "model", "accuracy", "macro-F1", "train s", "pred/s"
        )?;
        for c in &classes {
            write!(
                f,
                " {:>9}",
                format!("F1 {}", c.chars().take(6).collect::<String>())
            )?;
        }
        writeln!(f)?;
        for r in &self.rows {
            write!(
                f,
                "{:<22} {:>8.4} {:>8.4} {:>9.2} {:>12.0}",
                r.model, r.eval.accuracy, r.eval.macro_f1, r.train_s, r.predictions_per_s
            )?;
            for c in &r.eval.per_class {
                write!(f, " {:>9.3}", c.f1)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn hand_computed_confusion() {
        // truth a a a b b c ; pred a a b b c unknown
        let e = Evaluation::new(&names(), &[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 2, 3]);
        assert_eq!(
            e.confusion,
            vec![vec![2, 1, 0, 0], vec![0, 1, 1, 0], vec![0, 0, 0, 1]]
        );
        assert!((e.accuracy - 3.0 / 6.0).abs() < 1e-12);
        assert_eq!(e.unknown, 1);
        // a: P 2/2, R 2/3 -> F1 0.8; b: P 1/2, R 1/2 -> 0.5; c: P 0, R 0 -> 0.
        let f: Vec<f64> = e.per_class.iter().map(|c| c.f1).collect();
        assert!((f[0] - 0.8).abs() < 1e-12 && (f[1] - 0.5).abs() < 1e-12 && f[2] == 0.0);
        assert!((e.macro_f1 - 1.3 / 3.0).abs() < 1e-12);
        assert!((e.per_class[1].precision - 0.5).abs() < 1e-12);
        let m = e.merge(&e);
        assert_eq!(m.confusion[0], vec![4, 2, 0, 0]);
        assert!((m.macro_f1 - e.macro_f1).abs() < 1e-12);
    }

    #[test]
    fn macro_f1_skips_absent_classes_and_report_prints() {
        let e = Evaluation::new(&names(), &[0, 1], &[0, 1]);
        assert_eq!(e.macro_f1, 1.0);
        let r = Report {
            title: "t".into(),
            rows: vec![ReportRow {
                model: "rf".into(),
                eval: e,
                train_s: 0.5,
                predictions_per_s: 1e6,
            }],
        };
        let s = r.to_string();
        assert!(s.contains("rf") && s.contains("1.0000"));
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
