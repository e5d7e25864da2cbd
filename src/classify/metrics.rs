//! Evaluation metrics: accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix,
//! with a readable report and a small terminal chart.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassStats {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// True examples of this class.
    pub support: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub labels: Vec<String>,
    /// `confusion[gold][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    pub total: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassStats>,
    /// Lines that produced no prediction (errors); not in the counts above.
    pub skipped: usize,
}

impl Metrics {
    /// From (gold, predicted) label indices.
    pub fn compute(labels: &[String], pairs: &[(usize, usize)], skipped: usize) -> Metrics {
        let k = labels.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for &(g, p) in pairs {
            confusion[g][p] += 1;
        }
        let total = pairs.len();
        let correct = (0..k).map(|i| confusion[i][i]).sum::<usize>();
        let per_class: Vec<ClassStats> = (0..k)
            .map(|c| {
                let tp = confusion[c][c] as f64;
                let predicted: usize = (0..k).map(|g| confusion[g][c]).sum();
                let support: usize = confusion[c].iter().sum();
                let precision = if predicted > 0 { tp / predicted as f64 } else { 0.0 };
                let recall = if support > 0 { tp / support as f64 } else { 0.0 };
                let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
                ClassStats { label: labels[c].clone(), precision, recall, f1, support }
            })
            .collect();
        let macro_f1 = if k > 0 { per_class.iter().map(|c| c.f1).sum::<f64>() / k as f64 } else { 0.0 };
        let accuracy = if total > 0 { correct as f64 / total as f64 } else { 0.0 };
        Metrics { labels: labels.to_vec(), confusion, total, correct, accuracy, macro_f1, per_class, skipped }
    }

    /// The report: headline numbers, per-class table, confusion matrix and bars.
    pub fn report(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "accuracy  {:.3}  ({} / {})\nmacro-F1  {:.3}\n",
            self.accuracy, self.correct, self.total, self.macro_f1
        ));
        if self.skipped > 0 {
            s.push_str(&format!("skipped   {} line(s) with errors\n", self.skipped));
        }
        let w = self.labels.iter().map(|l| l.chars().count()).max().unwrap_or(5).max(5);
        s.push_str(&format!("\n{:<w$}  precision  recall     F1  support\n", "class"));
        for c in &self.per_class {
            s.push_str(&format!(
                "{:<w$}  {:>9.3}  {:>6.3}  {:>5.3}  {:>7}\n",
                c.label, c.precision, c.recall, c.f1, c.support
            ));
        }
        s.push_str(&format!("\nconfusion (rows = true, columns = predicted)\n{:<w$}", ""));
        let cw = self.labels.iter().map(|l| l.chars().count()).max().unwrap_or(1).max(6);
        for l in &self.labels {
            s.push_str(&format!("  {l:>cw$}"));
        }
        s.push('\n');
        let max = self.confusion.iter().flatten().copied().max().unwrap_or(0).max(1);
        for (g, row) in self.confusion.iter().enumerate() {
            s.push_str(&format!("{:<w$}", self.labels[g]));
            for &n in row {
                // Shade each cell by its share of the largest cell.
                let shade = [' ', '░', '▒', '▓', '█'][(n * 4).div_ceil(max).min(4)];
                s.push_str(&format!("  {:>width$}{shade}", n, width = cw - 1));
            }
            s.push('\n');
        }
        s.push_str("\nF1 per class\n");
        for c in &self.per_class {
            s.push_str(&format!("{:<w$}  {} {:.3}\n", c.label, bar(c.f1, 30), c.f1));
        }
        s
    }
}

/// A horizontal bar of `width` cells for a value in 0..=1, with eighth-cell resolution.
pub fn bar(value: f64, width: usize) -> String {
    let eighths = (value.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(['▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8 - 1]);
    }
    let used = s.chars().count();
    s.push_str(&"·".repeat(width.saturating_sub(used)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_confusion_matrix() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        // gold a: 3 → a,a,b ; gold b: 2 → b,c ; gold c: 1 → c
        let pairs = [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2), (2, 2)];
        let m = Metrics::compute(&labels, &pairs, 1);
        assert_eq!(m.confusion, vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        assert_eq!((m.correct, m.total, m.skipped), (4, 6, 1));
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // a: P 1, R 2/3, F1 0.8 ; b: P 1/2, R 1/2, F1 1/2 ; c: P 1/2, R 1, F1 2/3
        let f1: Vec<f64> = m.per_class.iter().map(|c| c.f1).collect();
        assert!((f1[0] - 0.8).abs() < 1e-12 && (f1[1] - 0.5).abs() < 1e-12 && (f1[2] - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.per_class[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(m.per_class[1].support, 2);
        let r = m.report();
        assert!(r.contains("accuracy  0.667  (4 / 6)") && r.contains("skipped   1"), "{r}");
    }

    #[test]
    fn empty_and_never_predicted_classes_do_not_divide_by_zero() {
        let labels = vec!["x".to_string(), "y".to_string()];
        let m = Metrics::compute(&labels, &[(0, 0)], 0);
        assert_eq!(m.per_class[1].f1, 0.0);
        assert_eq!(Metrics::compute(&labels, &[], 0).accuracy, 0.0);
    }

    #[test]
    fn bars_have_fixed_width() {
        assert_eq!(bar(1.0, 10).chars().count(), 10);
        assert_eq!(bar(0.0, 10), "·".repeat(10));
        assert_eq!(bar(0.55, 10).chars().count(), 10);
    }
}
