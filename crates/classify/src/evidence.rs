//! Learned token evidence: what each application token (host-name label,
//! registered domain, ALPN, recognised protocol, port service, catalogue
//! category, …) says about the class, counted on the training flows.
//!
//! Hashed token buckets let a model memorise names, but a tree rarely
//! splits on one of hundreds of sparse columns, and a name seen in one
//! capture only teaches that capture. [`TokenEvidence`] turns the tokens of
//! a flow into a few dense features per class: the strongest smoothed
//! posterior P(class | token) among its catalogue-category tokens (`cat:…`,
//! what the service catalogue says, which carries to services never seen)
//! and among its other tokens. Training rows get their evidence from the *other* groups only
//! (leave-one-group-out counts), so the model learns how far evidence from
//! unseen captures can be trusted, which is the situation at prediction time.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Pseudo-count of the smoothing towards the uniform prior.
const ALPHA: f32 = 2.0;
/// Tokens of this prefix (catalogue categories) get their own features.
const CATALOGUE_PREFIX: &str = "cat:";

/// Per-token class counts (weighted so every class weighs the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TokenEvidence {
    pub classes: usize,
    /// Token → weighted count per class (ordered, so model files are
    /// reproducible byte for byte).
    pub counts: Counts,
}

/// Token → weighted count per class.
pub type Counts = BTreeMap<String, Vec<f32>>;

/// Adds one row's tokens (each once) with `weight` to `class`.
fn add_row(counts: &mut Counts, tokens: &[String], classes: usize, class: usize, weight: f32) {
    for t in dedup(tokens) {
        counts
            .entry(t.clone())
            .or_insert_with(|| vec![0.0; classes])[class] += weight;
    }
}

/// Names of the evidence features for `class_names`, in order.
pub fn evidence_feature_names(class_names: &[String]) -> Vec<String> {
    let mut n: Vec<String> = class_names
        .iter()
        .map(|c| format!("ev_catalogue_{c}"))
        .collect();
    n.extend(class_names.iter().map(|c| format!("ev_tokens_{c}")));
    n.push("ev_known_tokens_log".into());
    n
}

/// Number of evidence features for `k` classes.
pub fn evidence_feature_count(k: usize) -> usize {
    2 * k + 1
}

impl TokenEvidence {
    /// Counts tokens of rows `idx` (`tokens[i]`, class `y[i]`), each class
    /// weighing the same in total.
    pub fn fit(tokens: &[Vec<String>], y: &[usize], classes: usize, idx: &[usize]) -> Self {
        let w = class_balance(y, classes, idx);
        let mut counts = Counts::new();
        for &i in idx {
            add_row(&mut counts, &tokens[i], classes, y[i], w[y[i]]);
        }
        TokenEvidence { classes, counts }
    }

    /// Evidence features of a token list.
    pub fn features(&self, tokens: &[String]) -> Vec<f32> {
        self.features_excluding(tokens, None)
    }

    /// Evidence features with `minus` (a group's own counts) taken out first.
    fn features_excluding(&self, tokens: &[String], minus: Option<&Counts>) -> Vec<f32> {
        let k = self.classes;
        let mut out = vec![0f32; evidence_feature_count(k)];
        let prior = 1.0 / k as f32;
        // No evidence: the prior.
        out[..2 * k].fill(prior);
        let mut known = 0u32;
        let mut c = vec![0f32; k];
        for t in dedup(tokens) {
            let Some(total) = self.counts.get(t) else {
                continue;
            };
            c.copy_from_slice(total);
            if let Some(own) = minus.and_then(|m| m.get(t)) {
                for (a, b) in c.iter_mut().zip(own) {
                    *a = (*a - b).max(0.0);
                }
            }
            let n: f32 = c.iter().sum();
            if n < 1e-6 {
                continue;
            }
            known += 1;
            let at = if t.starts_with(CATALOGUE_PREFIX) {
                0
            } else {
                k
            };
            for j in 0..k {
                let p = (c[j] + ALPHA * prior) / (n + ALPHA);
                out[at + j] = out[at + j].max(p);
            }
        }
        out[2 * k] = (known as f32).ln_1p();
        out
    }

    /// Evidence features of every row in `idx`, each from the counts of the
    /// other groups only (`groups[i]` names row i's group).
    pub fn features_leave_group_out(
        tokens: &[Vec<String>],
        y: &[usize],
        groups: &[String],
        classes: usize,
        idx: &[usize],
    ) -> (Self, Vec<Vec<f32>>) {
        let all = Self::fit(tokens, y, classes, idx);
        let w = class_balance(y, classes, idx);
        // Each group's own share of the counts, taken out of its rows' evidence.
        let mut own: HashMap<&str, Counts> = HashMap::new();
        for &i in idx {
            let g = own.entry(groups[i].as_str()).or_default();
            add_row(g, &tokens[i], classes, y[i], w[y[i]]);
        }
        let rows = idx
            .iter()
            .map(|&i| all.features_excluding(&tokens[i], own.get(groups[i].as_str())))
            .collect();
        (all, rows)
    }
}

/// Multiplies class probabilities `p` by the catalogue's likelihood ratio
/// (the catalogue evidence `ev_catalogue`, the first k evidence features,
/// over the uniform prior) raised to `weight`, and renormalises.
///
/// A model learns the catalogue's categories only from the few training
/// flows whose names are listed, and under-uses them (on the real captures
/// a service such as Netflix has 11 such rows when its capture is held
/// out); this is the naive-Bayes way to let that evidence count in full.
/// Classes without catalogue evidence keep a ratio of 1.
pub fn apply_catalogue(p: &mut [f32], ev_catalogue: &[f32], weight: f32) {
    if weight == 0.0 || ev_catalogue.len() != p.len() {
        return;
    }
    let k = p.len() as f32;
    for (pj, &e) in p.iter_mut().zip(ev_catalogue) {
        *pj *= (e * k).max(1e-6).powf(weight);
    }
    let sum: f32 = p.iter().sum();
    if sum > 0.0 {
        p.iter_mut().for_each(|x| *x /= sum);
    }
}

/// Weight per class so that every class present sums to the same total.
fn class_balance(y: &[usize], classes: usize, idx: &[usize]) -> Vec<f32> {
    let mut n = vec![0f32; classes];
    for &i in idx {
        n[y[i]] += 1.0;
    }
    let present = n.iter().filter(|&&c| c > 0.0).count().max(1) as f32;
    let total: f32 = n.iter().sum();
    n.iter()
        .map(|&c| if c > 0.0 { total / (present * c) } else { 0.0 })
        .collect()
}

/// Each token once, in first-seen order (a flow's tokens are few).
fn dedup(tokens: &[String]) -> impl Iterator<Item = &String> {
    tokens
        .iter()
        .enumerate()
        .filter(move |(i, t)| !tokens[..*i].contains(t))
        .map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn posterior_is_the_smoothed_balanced_count() {
        // Class 0 has 3 rows, class 1 has 1: weights 4/6 and 4/2.
        let tokens = vec![toks("a b"), toks("a"), toks("c"), toks("a c")];
        let y = vec![0, 0, 0, 1];
        let ev = TokenEvidence::fit(&tokens, &y, 2, &[0, 1, 2, 3]);
        let (w0, w1) = (4.0 / 6.0, 2.0);
        assert_eq!(ev.counts["a"], vec![2.0 * w0, w1]);
        let f = ev.features(&toks("a a"));
        // Token "a" once (duplicates ignored): (2w0 + 1) / (2w0 + w1 + 2).
        let p0 = (2.0 * w0 + 1.0) / (2.0 * w0 + w1 + 2.0);
        let p1 = (w1 + 1.0) / (2.0 * w0 + w1 + 2.0);
        // Each value is the strongest evidence *for* the class, floored at the prior.
        assert!(p0 < 0.5 && f[2] == 0.5, "{f:?}");
        assert!((f[3] - p1).abs() < 1e-6, "{f:?}");
        assert_eq!(&f[..2], &[0.5, 0.5], "no catalogue token: the prior");
        assert!((f[4] - 2f32.ln()).abs() < 1e-6, "one known token");
        // Unknown tokens: the prior.
        assert_eq!(ev.features(&toks("zzz")), vec![0.5, 0.5, 0.5, 0.5, 0.0]);
        // The strongest token per class wins; catalogue tokens go first.
        let ev = TokenEvidence::fit(&[toks("cat:video b"), toks("b")], &[1, 0], 2, &[0, 1]);
        let f = ev.features(&toks("cat:video b"));
        assert!((f[1] - 2.0 / 3.0).abs() < 1e-6 && f[0] == 0.5, "{f:?}");
        assert!(
            (f[2] - 0.5).abs() < 1e-6 && (f[3] - 0.5).abs() < 1e-6,
            "{f:?}"
        );
    }

    #[test]
    fn catalogue_ratio_multiplies_and_renormalises() {
        let mut p = vec![0.5, 0.3, 0.2];
        // Prior 1/3: class 1 has evidence 2/3 (ratio 2), the others the prior.
        apply_catalogue(&mut p, &[1.0 / 3.0, 2.0 / 3.0, 1.0 / 3.0], 1.0);
        let z = 0.5 + 0.6 + 0.2;
        for (a, b) in p.iter().zip([0.5 / z, 0.6 / z, 0.2 / z]) {
            assert!((a - b).abs() < 1e-6, "{p:?}");
        }
        let before = p.clone();
        apply_catalogue(&mut p, &[0.9, 0.05, 0.05], 0.0);
        assert_eq!(p, before, "weight 0 leaves the model's answer");
    }

    #[test]
    fn leave_group_out_never_sees_its_own_group() {
        // Token "x" occurs only in group g1: g1's rows must get no evidence from it.
        let tokens = vec![toks("x"), toks("x"), toks("y"), toks("y x")];
        let y = vec![1, 1, 0, 0];
        let groups: Vec<String> = ["g1", "g1", "g2", "g3"].map(String::from).to_vec();
        let (all, rows) =
            TokenEvidence::features_leave_group_out(&tokens, &y, &groups, 2, &[0, 1, 2, 3]);
        // Rows 0, 1: "x" is left only with g3's count (class 0).
        let from_g3 = TokenEvidence::fit(&tokens, &y, 2, &[2, 3]);
        let class_w_all = TokenEvidence::fit(&tokens, &y, 2, &[0, 1, 2, 3]).counts["x"][0];
        assert!(from_g3.counts["x"][0] > 0.0);
        assert!(
            rows[0][2] > rows[0][3],
            "only class-0 evidence remains for g1"
        );
        assert_eq!(rows[0], rows[1]);
        // Row 2 (g2, token y) sees y from g3 only.
        let expect_p0 = (class_w_all + 1.0) / (class_w_all + 2.0);
        assert!((rows[2][2] - expect_p0).abs() < 1e-6, "{:?}", rows[2]);
        // The full table is that of all rows.
        assert_eq!(all, TokenEvidence::fit(&tokens, &y, 2, &[0, 1, 2, 3]));
    }
}
