//! The measured figures of a bench run as data: rows of values with a unit, an
//! optional target and the verdict computed from them (never parsed back from
//! text). `render` turns a [`Report`] into markdown.

use crate::harness::summary;

/// The unit of a row's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
    /// Bytes.
    B,
    /// A count (round trips, errors).
    Count,
    /// Mebibytes.
    MiB,
    /// A ratio.
    Ratio,
}

impl Unit {
    /// How the report names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::S => "s",
            Unit::B => "B",
            Unit::Count => "count",
            Unit::MiB => "MiB",
            Unit::Ratio => "×",
        }
    }

    /// `x` with the precision the report uses for this unit ("–" for NaN).
    pub fn format(self, x: f64) -> String {
        if x.is_nan() {
            return "–".into();
        }
        match self {
            Unit::Ms if x >= 10.0 => format!("{x:.0}"),
            Unit::B | Unit::Count => format!("{x:.0}"),
            Unit::Ms | Unit::S | Unit::MiB | Unit::Ratio => format!("{x:.2}"),
        }
    }
}

/// Which side of its limit a figure must stay on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The figure must be at most this.
    AtMost(f64),
    /// The figure must be at least this.
    AtLeast(f64),
}

/// Which statistic of a row's values a target judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// The median of the runs.
    Median,
    /// Every run: the worst value (the maximum for [`Bound::AtMost`], the
    /// minimum for [`Bound::AtLeast`]).
    EveryRun,
}

/// A target a figure is held to.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// As the report prints it (e.g. "≤ 10 ms").
    pub label: String,
    /// The limit.
    pub bound: Bound,
    /// What is compared with the limit.
    pub judged: Judged,
}

impl Target {
    /// The median must be at most `limit`.
    pub fn at_most(limit: f64, label: impl Into<String>) -> Target {
        Target {
            label: label.into(),
            bound: Bound::AtMost(limit),
            judged: Judged::Median,
        }
    }

    /// The median must be at least `limit`.
    pub fn at_least(limit: f64, label: impl Into<String>) -> Target {
        Target {
            label: label.into(),
            bound: Bound::AtLeast(limit),
            judged: Judged::Median,
        }
    }

    /// Judged on every run instead of the median.
    pub fn every_run(mut self) -> Target {
        self.judged = Judged::EveryRun;
        self
    }

    /// The verdict for `values` (of which `failed` more runs produced none).
    pub fn judge(&self, values: &[f64], failed: usize) -> Verdict {
        let (median, min, max) = summary(values);
        let x = match (self.judged, self.bound) {
            (Judged::Median, _) => median,
            (Judged::EveryRun, Bound::AtMost(_)) => max,
            (Judged::EveryRun, Bound::AtLeast(_)) => min,
        };
        if x.is_nan() {
            return Verdict::NotMeasured;
        }
        if failed > 0 {
            return Verdict::Missed { by: None };
        }
        match self.bound {
            Bound::AtMost(limit) if x <= limit => Verdict::Met,
            Bound::AtLeast(limit) if x >= limit => Verdict::Met,
            Bound::AtMost(limit) => Verdict::Missed {
                by: (limit > 0.0).then(|| x / limit),
            },
            Bound::AtLeast(limit) => Verdict::Missed {
                by: (x > 0.0).then(|| limit / x),
            },
        }
    }
}

/// How a figure stands against its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The figure has no target (it is context for another).
    NoTarget,
    /// There is a target but nothing was measured (no value, or NaN).
    NotMeasured,
    /// Within the target.
    Met,
    /// Outside it; `by` is how far, as a factor of the limit (> 1), when
    /// that means something (`None` for a limit of 0, or when runs failed).
    Missed {
        /// The factor, e.g. 1.15 for a figure 15 % over an "at most" limit.
        by: Option<f64>,
    },
}

/// One figure: the values of its runs, and what they are held to.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario id (W1, S2 …): scripts select rows by it.
    pub id: &'static str,
    /// What the figure is.
    pub what: String,
    /// Unit of `values`.
    pub unit: Unit,
    /// One value per run.
    pub values: Vec<f64>,
    /// Runs that failed and gave no value.
    pub failed_runs: usize,
    /// The target, if the figure has one.
    pub target: Option<Target>,
    /// Free text for the notes column.
    pub note: String,
}

impl Row {
    /// Median of the values.
    pub fn median(&self) -> f64 {
        summary(&self.values).0
    }

    /// Holds the figure to `target`.
    pub fn target(&mut self, target: Target) -> &mut Row {
        self.target = Some(target);
        self
    }

    /// Records `n` runs that failed (a target is then missed).
    pub fn failed_runs(&mut self, n: usize) -> &mut Row {
        self.failed_runs = n;
        self
    }

    /// Sets the notes column.
    pub fn note(&mut self, text: impl Into<String>) -> &mut Row {
        self.note = text.into();
        self
    }

    /// The verdict, computed from the values.
    pub fn verdict(&self) -> Verdict {
        match &self.target {
            None => Verdict::NoTarget,
            Some(t) => t.judge(&self.values, self.failed_runs),
        }
    }
}

/// Every figure of a run, in the order the report prints them.
#[derive(Debug, Default)]
pub struct Report {
    /// The figures.
    pub rows: Vec<Row>,
    /// Extra bullets for the header (baseline notes, things left out).
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a figure; returns it for its target and note.
    pub fn add(
        &mut self,
        id: &'static str,
        what: impl Into<String>,
        unit: Unit,
        values: Vec<f64>,
    ) -> &mut Row {
        self.rows.push(Row {
            id,
            what: what.into(),
            unit,
            values,
            failed_runs: 0,
            target: None,
            note: String::new(),
        });
        let last = self.rows.len() - 1;
        &mut self.rows[last]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(target: Target, values: &[f64], failed: usize, expected: Verdict) {
        assert_eq!(
            target.judge(values, failed),
            expected,
            "{target:?} on {values:?}"
        );
    }

    #[test]
    fn verdicts_come_from_the_values() {
        let t = || Target::at_most(10.0, "≤ 10 ms");
        check(t(), &[1.0, 2.0, 30.0], 0, Verdict::Met);
        check(
            t(),
            &[12.0, 12.0, 1.0],
            0,
            Verdict::Missed { by: Some(1.2) },
        );
        check(
            t().every_run(),
            &[1.0, 2.0, 30.0],
            0,
            Verdict::Missed { by: Some(3.0) },
        );
        check(t(), &[], 0, Verdict::NotMeasured);
        check(t(), &[f64::NAN], 0, Verdict::NotMeasured);
        check(t(), &[1.0], 1, Verdict::Missed { by: None });
        check(Target::at_most(0.0, "0"), &[0.0, 0.0], 0, Verdict::Met);
        check(
            Target::at_most(0.0, "0").every_run(),
            &[0.0, 2.0],
            0,
            Verdict::Missed { by: None },
        );
        let three = || Target::at_least(3.0, "≥ 3×");
        check(three(), &[3.0], 0, Verdict::Met);
        check(three(), &[2.0], 0, Verdict::Missed { by: Some(1.5) });
        check(
            three().every_run(),
            &[4.0, 1.5, 5.0],
            0,
            Verdict::Missed { by: Some(2.0) },
        );
        check(three(), &[0.0], 0, Verdict::Missed { by: None });
    }

    #[test]
    fn a_row_without_a_target_has_no_verdict() {
        let mut r = Report::default();
        r.add("W1", "p50", Unit::Ms, vec![1.0]);
        assert_eq!(r.rows[0].verdict(), Verdict::NoTarget);
        r.add("W1", "p99", Unit::Ms, vec![11.0])
            .target(Target::at_most(10.0, "≤ 10 ms"))
            .note("free text saying missed by 9× is not read back");
        assert_eq!(r.rows[1].verdict(), Verdict::Missed { by: Some(1.1) });
    }

    #[test]
    fn units_format_as_before() {
        assert_eq!(Unit::Ms.format(0.923), "0.92");
        assert_eq!(Unit::Ms.format(107.6), "108");
        assert_eq!(Unit::B.format(3377.4), "3377");
        assert_eq!(Unit::Ratio.format(1.0789), "1.08");
        assert_eq!(Unit::S.format(f64::NAN), "–");
    }
}
