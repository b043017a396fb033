//! Anomaly detection over a metric's own history: a list of past
//! (time, value, outcome) points and [`Settings`] in, a [`Verdict`] out,
//! with the expected band `{lower, center, upper}` and a robust score.
//!
//! The `anomaly` check kind and `cargo bench --bench anomaly` both call
//! [`detect`]; so can anything else that learns what is normal from a
//! series (a learned freshness lag, for one).
//!
//! # The method, and why
//!
//! A robust seasonal baseline with an honest band:
//!
//! 1. **Scale.** A series whose clean values are all positive (row counts,
//!    averages, lags, rates) is modelled in logarithms: its noise and its
//!    seasonal swings are relative, so a quiet night hour and a busy noon
//!    get bands of the same *relative* width. Anything else stays linear.
//! 2. **Seasonality.** One bucket per hour of the day, day of the week or
//!    hour of the week; a bucket's offset is its median against the
//!    series' median. `auto` takes the candidates the cadence allows
//!    (daily: day of week; hourly: hour of day, then hour of week) and
//!    keeps a finer one only when every bucket has enough points and it
//!    cuts the residual spread by a fifth or more: a pattern that is there,
//!    not noise fitted.
//! 3. **Trend, only where it is real.** A resistant line (medians of the
//!    first and last thirds) is kept only when the change it implies is
//!    three standard errors from zero.
//! 4. **Band.** The spread is the MAD of the residuals × 1.4826, widened
//!    for a small sample (the MAD has about 37% of the efficiency of a
//!    standard deviation, so the band uses a Cornish–Fisher expansion of
//!    Student's t at those degrees of freedom) and for the error of the
//!    bucket's median, the level and the trend's extrapolation. The band's
//!    half-width is never below `min_change` of the expected value: small
//!    changes never alert.
//! 5. **Training without incidents.** Points judged anomalous, failing or
//!    in error are left out; a flagged point is left out only if a fit on
//!    all points still finds it out of its band, so an early, too-narrow
//!    band does not exclude normal points forever. A run of `adapt_after`
//!    flagged points on the same side is a level shift: the history before
//!    it is moved by the shift, and the shifted level is the new normal.
//!
//! On the corpus of `benches/anomaly.rs` (README, "Anomaly detection")
//! this is what separates it from a z-score over the last 14 points of a
//! bucket, which lets incidents widen its band and has no floor.

use chrono::{Datelike, NaiveDateTime, Timelike};

/// How unusual a point was once judged: what leaves training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointOutcome {
    /// Judged normal (or recorded while learning): trains the model.
    Normal,
    /// Judged anomalous: left out unless a fit on all points takes it back,
    /// and part of a level shift when enough follow on the same side.
    Anomalous,
    /// Failing or in error for another reason: always left out.
    Failed,
}

/// One past observation of the metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When the value stands for (a partition's start, or the run's
    /// scheduled time), in the local wall time the seasons are read in.
    pub at: NaiveDateTime,
    pub value: f64,
    pub outcome: PointOutcome,
}

/// Which side of the band alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Both,
    /// Only values above the band.
    Spike,
    /// Only values below the band.
    Drop,
}

/// The repeating pattern the baseline follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seasonality {
    /// Chosen from the cadence and from whether the history shows it.
    #[default]
    Auto,
    None,
    HourOfDay,
    DayOfWeek,
    HourOfWeek,
}

impl Seasonality {
    /// As written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::None => "none",
            Self::HourOfDay => "hour_of_day",
            Self::DayOfWeek => "day_of_week",
            Self::HourOfWeek => "hour_of_week",
        }
    }

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Auto,
            Self::None,
            Self::HourOfDay,
            Self::DayOfWeek,
            Self::HourOfWeek,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    fn buckets(self) -> usize {
        match self {
            Self::Auto | Self::None => 1,
            Self::HourOfDay => 24,
            Self::DayOfWeek => 7,
            Self::HourOfWeek => 168,
        }
    }

    fn bucket(self, at: NaiveDateTime) -> usize {
        let day = at.weekday().num_days_from_monday() as usize;
        let hour = at.hour() as usize;
        match self {
            Self::Auto | Self::None => 0,
            Self::HourOfDay => hour,
            Self::DayOfWeek => day,
            Self::HourOfWeek => day * 24 + hour,
        }
    }

    /// Points a bucket needs before the pattern can be used.
    fn min_per_bucket(self) -> usize {
        match self {
            Self::Auto | Self::None => 1,
            Self::HourOfDay | Self::DayOfWeek => 2,
            // Per hour of the day; and a day's worth per weekday.
            Self::HourOfWeek => 2,
        }
    }

    /// What the band stands for: "for a Tuesday", "at 14:00".
    fn context(self, at: NaiveDateTime) -> Option<String> {
        let day = at.format("%A");
        match self {
            Self::Auto | Self::None => None,
            Self::HourOfDay => Some(format!("at {:02}:00", at.hour())),
            Self::DayOfWeek => Some(format!("for a {day}")),
            Self::HourOfWeek => Some(format!("for a {day} at {:02}:00", at.hour())),
        }
    }
}

/// How often the series gets a point, when the caller knows it (from a
/// schedule or a partition granularity); else it is read from the spacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    Hourly,
    Daily,
}

/// What the detector is asked to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Robust standard deviations a value must be from the expected one.
    pub sensitivity: f64,
    pub direction: Direction,
    pub seasonality: Seasonality,
    /// The window of history learned from.
    pub training: chrono::Duration,
    /// Points needed before judging; fewer and the verdict is learning.
    pub min_training: usize,
    /// A change smaller than this share of the expected value never alerts.
    pub min_change: f64,
    /// Flagged points in a row on one side that become the new normal.
    pub adapt_after: usize,
    pub cadence: Option<Cadence>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sensitivity: 3.0,
            direction: Direction::Both,
            seasonality: Seasonality::Auto,
            training: chrono::Duration::weeks(8),
            min_training: 14,
            min_change: 0.05,
            adapt_after: 7,
            cadence: None,
        }
    }
}

/// The expected range of a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub lower: f64,
    pub center: f64,
    pub upper: f64,
}

/// Which side of the band a value fell on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Above,
    Below,
}

/// The judgement of one value against its history.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub expected: Band,
    /// Robust standard deviations from the expected value (signed; in the
    /// model's scale, logarithmic for positive series).
    pub score: f64,
    /// Outside the band, on a side the direction alerts on.
    pub anomalous: bool,
    /// The side it fell on, when outside the band (or shifted to).
    pub outside: Option<Side>,
    /// Inside the band, but the last `adapt_after` values, this one
    /// included, all sat beyond half of it on one side: a lasting shift.
    pub sustained: bool,
    /// The seasonality used (`auto` resolved).
    pub seasonality: Seasonality,
    /// "for a Tuesday", "at 14:00".
    pub context: Option<String>,
    /// When a level shift became the new normal, if one did in the window.
    pub adapted_since: Option<NaiveDateTime>,
    /// Points trained on.
    pub trained_on: usize,
}

/// The detector's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Too few points yet: `have` of `need`.
    Learning {
        have: usize,
        need: usize,
    },
    Judged(Judgement),
}

impl Verdict {
    /// Whether the value alerts.
    pub fn is_anomalous(&self) -> bool {
        matches!(self, Self::Judged(j) if j.anomalous)
    }
}

impl Judgement {
    /// "412 rows, expected 870–1,130 for a Tuesday", with `observed` the
    /// value as shown and `show` formatting the band; when anomalous, the
    /// share of the usual value it is; the level shift adopted, if any.
    pub fn describe(&self, value: f64, observed: &str, show: impl Fn(f64) -> String) -> String {
        let band = &self.expected;
        let mut text = format!(
            "{observed}, expected {}–{}",
            show(band.lower),
            show(band.upper)
        );
        if let Some(c) = &self.context {
            text.push(' ');
            text.push_str(c);
        }
        if self.anomalous {
            let side = match self.outside {
                Some(Side::Above) => "above",
                _ => "below",
            };
            if self.sustained {
                text.push_str(&format!(
                    ": {side} the usual level for several points in a row"
                ));
            } else {
                text.push_str(&format!(": {side} the usual range"));
            }
            if band.center > 0.0 && value >= 0.0 {
                let share = value / band.center * 100.0;
                let share = if share >= 10.0 {
                    format!("{share:.0}")
                } else {
                    format!("{share:.1}")
                };
                text.push_str(&format!(", {share}% of the usual"));
            }
        }
        if let Some(at) = self.adapted_since {
            text.push_str(&format!(
                "; a level shift since {} is the new normal",
                at.format("%Y-%m-%d %H:%M")
            ));
        }
        text
    }
}

/// How much further out than `sensitivity` normal deviations the band's
/// quantile sits: loads are heavier-tailed than a normal distribution, and
/// at exactly `k` deviations a daily series raises about one false alarm a
/// year by chance alone (0.27% of 365 points). Calibrated on the corpus of
/// `benches/anomaly.rs`.
const TAIL_CALIBRATION: f64 = 1.3;

/// Judges `value` at `at` against `history` (any order; points at or after
/// `at`, and before the training window, are ignored).
pub fn detect(history: &[Point], at: NaiveDateTime, value: f64, s: &Settings) -> Verdict {
    let since = at - s.training;
    let mut pts: Vec<Point> = history
        .iter()
        .filter(|p| p.at < at && p.at >= since && p.value.is_finite())
        .filter(|p| p.outcome != PointOutcome::Failed)
        .copied()
        .collect();
    pts.sort_by_key(|p| p.at);
    let have = pts.len();
    let cadence = s.cadence.unwrap_or_else(|| guess_cadence(&pts));
    // `auto` must have seen a week before it can tell a weekly pattern.
    let cycle = match (s.seasonality, cadence) {
        (Seasonality::Auto | Seasonality::HourOfWeek, Cadence::Hourly) => 24 * 7 + 24,
        (Seasonality::HourOfDay, Cadence::Hourly) => 48,
        _ => 0,
    };
    let need = s.min_training.max(cycle).max(3);
    if have < need {
        return Verdict::Learning { have, need };
    }
    let log = pts
        .iter()
        .filter(|p| p.outcome == PointOutcome::Normal)
        .all(|p| p.value > 0.0);
    let scale = Scale { log };
    let t0 = at;
    let mut obs: Vec<Obs> = pts
        .iter()
        .map(|p| Obs {
            t: days(p.at, t0),
            y: scale.to(p.value),
            at: p.at,
            flagged: p.outcome == PointOutcome::Anomalous,
        })
        .collect();
    let k = s.sensitivity.max(0.1) * TAIL_CALIBRATION;

    // A level shift: the latest run of `adapt_after` flagged points in a
    // row. A value back at the level before it is normal all the same: the
    // incident is over.
    let plain = obs.clone();
    let adapted_since = adapt(&mut obs, s, cadence, k, (at, scale.to(value)));
    let verdict = judge(obs, at, value, s, scale, cadence, k, need, adapted_since);
    if adapted_since.is_some() && verdict.is_anomalous() {
        let before = judge(plain, at, value, s, scale, cadence, k, need, None);
        if !before.is_anomalous() {
            return before;
        }
    }
    verdict
}

/// The verdict on `value` with the points of `obs` (flagged ones left out
/// unless a fit on all points takes them back).
#[allow(clippy::too_many_arguments)]
fn judge(
    mut obs: Vec<Obs>,
    at: NaiveDateTime,
    value: f64,
    s: &Settings,
    scale: Scale,
    cadence: Cadence,
    k: f64,
    need: usize,
    adapted_since: Option<NaiveDateTime>,
) -> Verdict {
    // Flagged points come back when a fit on all points takes them.
    if obs.iter().any(|o| o.flagged) {
        let season = choose(&obs, s.seasonality, cadence, |_| true);
        let all = fit(&obs, season, |_| true);
        for o in obs.iter_mut().filter(|o| o.flagged) {
            let (c, sd) = all.predict(o.t, season.bucket(o.at), k);
            if (o.y - c).abs() <= k * sd {
                o.flagged = false;
            }
        }
    }
    let clean = |o: &Obs| !o.flagged;
    let trained_on = obs.iter().filter(|o| clean(o)).count();
    if trained_on < 3 {
        return Verdict::Learning {
            have: trained_on,
            need,
        };
    }
    let mut season = choose(&obs, s.seasonality, cadence, clean);
    // The bucket of the value judged must have been seen.
    while season != Seasonality::None
        && !obs
            .iter()
            .any(|o| clean(o) && season.bucket(o.at) == season.bucket(at))
    {
        season = coarser(season);
    }
    let model = fit(&obs, season, clean);
    let (center, sd) = model.predict(0.0, season.bucket(at), k);
    let width = k * sd;
    let (lo_floor, hi_floor) = scale.floors(center, s.min_change);
    let lower_t = center - width.max(lo_floor);
    let upper_t = center + width.max(hi_floor);
    let y = scale.to(value);
    let score = if sd > 0.0 {
        (y - center) / sd
    } else if y == center {
        0.0
    } else {
        (y - center).signum() * 1e9
    };
    let mut outside = if y > upper_t {
        Some(Side::Above)
    } else if y < lower_t {
        Some(Side::Below)
    } else {
        None
    };
    // A lasting shift within the band: this value and the `adapt_after` − 1
    // before it all beyond half the band, on one side.
    let half_out = |y: f64, c: f64| {
        if y > c + (upper_t - center) / 2.0 {
            Some(Side::Above)
        } else if y < c - (center - lower_t) / 2.0 {
            Some(Side::Below)
        } else {
            None
        }
    };
    let mut sustained = false;
    if outside.is_none()
        && s.adapt_after >= 2
        && let Some(side) = half_out(y, center)
    {
        let recent = obs.iter().rev().take(s.adapt_after - 1);
        let all = recent.clone().count() == s.adapt_after - 1
            && recent.into_iter().all(|o| {
                let (c, _) = model.predict(o.t, season.bucket(o.at), k);
                half_out(o.y, c) == Some(side)
            });
        if all {
            outside = Some(side);
            sustained = true;
        }
    }
    let anomalous = match (outside, s.direction) {
        (None, _) => false,
        (Some(_), Direction::Both) => true,
        (Some(side), Direction::Spike) => side == Side::Above,
        (Some(side), Direction::Drop) => side == Side::Below,
    };
    Verdict::Judged(Judgement {
        expected: Band {
            lower: scale.from(lower_t),
            center: scale.from(center),
            upper: scale.from(upper_t),
        },
        score: clamp_score(score),
        anomalous,
        outside,
        sustained,
        seasonality: season,
        context: season.context(at),
        adapted_since,
        trained_on,
    })
}

fn clamp_score(s: f64) -> f64 {
    if s.is_nan() { 0.0 } else { s.clamp(-1e9, 1e9) }
}

/// Days from `t0` to `at` (negative for the past).
fn days(at: NaiveDateTime, t0: NaiveDateTime) -> f64 {
    (at - t0).num_seconds() as f64 / 86_400.0
}

/// Linear or logarithmic.
#[derive(Clone, Copy)]
struct Scale {
    log: bool,
}

impl Scale {
    /// Smallest value taken in logarithms (a zero in a positive series).
    const TINY: f64 = 1e-12;

    fn to(self, v: f64) -> f64 {
        if self.log { v.max(Self::TINY).ln() } else { v }
    }

    fn from(self, y: f64) -> f64 {
        if self.log { y.exp() } else { y }
    }

    /// The least half-widths below and above `center` that `min_change`
    /// asks for.
    fn floors(self, center: f64, min_change: f64) -> (f64, f64) {
        let m = min_change.max(0.0);
        if self.log {
            let lo = if m >= 1.0 {
                f64::INFINITY
            } else {
                -(1.0 - m).ln()
            };
            (lo, (1.0 + m).ln())
        } else {
            let w = m * center.abs();
            (w, w)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Obs {
    t: f64,
    y: f64,
    at: NaiveDateTime,
    flagged: bool,
}

fn guess_cadence(pts: &[Point]) -> Cadence {
    let mut gaps: Vec<f64> = pts
        .windows(2)
        .map(|w| (w[1].at - w[0].at).num_seconds() as f64 / 86_400.0)
        .collect();
    if gaps.is_empty() {
        return Cadence::Daily;
    }
    if median(&mut gaps) < 0.5 {
        Cadence::Hourly
    } else {
        Cadence::Daily
    }
}

fn coarser(s: Seasonality) -> Seasonality {
    match s {
        Seasonality::HourOfWeek => Seasonality::HourOfDay,
        _ => Seasonality::None,
    }
}

/// Whether every bucket seen in the points kept has enough of them, and
/// every bucket of the cycle is seen.
fn usable(obs: &[Obs], season: Seasonality, keep: impl Fn(&Obs) -> bool) -> bool {
    if season == Seasonality::None {
        return true;
    }
    let mut counts = vec![0usize; season.buckets()];
    for o in obs.iter().filter(|o| keep(o)) {
        counts[season.bucket(o.at)] += 1;
    }
    if season == Seasonality::HourOfWeek {
        let hours = (0..24).all(|h| (0..7).map(|d| counts[d * 24 + h]).sum::<usize>() >= 2);
        let days = (0..7).all(|d| counts[d * 24..(d + 1) * 24].iter().sum::<usize>() >= 24);
        return hours && days;
    }
    counts.iter().all(|&c| c >= season.min_per_bucket())
}

/// The seasonality to use: the one asked for (coarser when its buckets
/// are too thin), or for `auto` the finest that the cadence allows and the
/// history shows.
fn choose(
    obs: &[Obs],
    asked: Seasonality,
    cadence: Cadence,
    keep: impl Fn(&Obs) -> bool + Copy,
) -> Seasonality {
    if asked != Seasonality::Auto {
        let mut s = asked;
        while !usable(obs, s, keep) {
            s = coarser(s);
        }
        return s;
    }
    let ladder: &[Seasonality] = match cadence {
        Cadence::Daily => &[Seasonality::DayOfWeek],
        Cadence::Hourly => &[Seasonality::HourOfDay, Seasonality::HourOfWeek],
    };
    let mut best = Seasonality::None;
    let mut best_sigma = fit(obs, best, keep).fit_error;
    for &s in ladder {
        if !usable(obs, s, keep) {
            break;
        }
        let sigma = fit(obs, s, keep).fit_error;
        if sigma < 0.8 * best_sigma {
            best = s;
            best_sigma = sigma;
        }
    }
    best
}

/// A fitted baseline: level + trend + seasonal offset, and the spread.
struct Fit {
    offsets: Vec<f64>,
    /// Per bucket, the sum of 1/points its offset was estimated from.
    inv_counts: Vec<f64>,
    level: f64,
    slope: f64,
    slope_se: f64,
    t_mid: f64,
    sigma: f64,
    /// Per hour of the day (hourly patterns) or day of the week, the
    /// spread of that bucket's residuals: a quiet night hour or a small
    /// weekend partition is noisier, relatively, than a busy one.
    hour_sigma: Vec<f64>,
    /// Mean absolute residual.
    fit_error: f64,
    n: usize,
    /// Degrees of freedom of the spread, after the MAD's efficiency.
    df: f64,
}

impl Fit {
    /// The expected value at `t` in bucket `b`, and the standard deviation
    /// of a new value there, widened so that `k` of them cover what `k`
    /// standard normal deviations would with the spread known.
    fn predict(&self, t: f64, b: usize, k: f64) -> (f64, f64) {
        let off = self.offsets.get(b).copied().unwrap_or(0.0);
        let own = match self.offsets.len() {
            24 | 168 => self.hour_sigma.get(b % 24),
            7 => self.hour_sigma.get(b),
            _ => None,
        };
        let sigma = own.map_or(self.sigma, |&h| self.sigma.max(h));
        let c = self.level + self.slope * (t - self.t_mid) + off;
        // The variance of a median is π/2 that of a mean.
        let half_pi = std::f64::consts::FRAC_PI_2;
        let seasonal = half_pi * self.inv_counts.get(b).copied().unwrap_or(1.0);
        let var = sigma.powi(2) * (1.0 + seasonal + half_pi / self.n.max(1) as f64)
            + ((t - self.t_mid) * self.slope_se).powi(2);
        let sd = var.sqrt() * t_widening(k, self.df);
        (c, sd)
    }
}

/// How much wider than `k` normal deviations a Student's t quantile at the
/// same tail is with `df` degrees of freedom (Cornish–Fisher, two terms).
fn t_widening(k: f64, df: f64) -> f64 {
    let df = df.max(1.0);
    let t = k
        + (k.powi(3) + k) / (4.0 * df)
        + (5.0 * k.powi(5) + 16.0 * k.powi(3) + 3.0 * k) / (96.0 * df * df);
    t / k
}

fn fit(obs: &[Obs], season: Seasonality, keep: impl Fn(&Obs) -> bool) -> Fit {
    let kept: Vec<&Obs> = obs.iter().filter(|o| keep(o)).collect();
    let n = kept.len();
    let buckets: Vec<usize> = kept.iter().map(|o| season.bucket(o.at)).collect();
    let t_mid = if n == 0 {
        0.0
    } else {
        (kept[0].t + kept[n - 1].t) / 2.0
    };
    let mut scratch = Vec::with_capacity(n);
    // Offsets on the raw values, then a trend on what they leave, then the
    // offsets again on the detrended values.
    let mut slope = 0.0;
    let mut slope_se = 0.0;
    let (mut offsets, mut inv_counts) = seasonal_offsets(&kept, season, 0.0, t_mid, &mut scratch);
    if n >= 12 {
        let d: Vec<f64> = kept
            .iter()
            .zip(&buckets)
            .map(|(o, &b)| o.y - offsets[b])
            .collect();
        let third = n / 3;
        let (first, last) = (&d[..third], &d[n - third..]);
        let tf = median_of(kept[..third].iter().map(|o| o.t), &mut scratch);
        let tl = median_of(kept[n - third..].iter().map(|o| o.t), &mut scratch);
        let mf = median_of(first.iter().copied(), &mut scratch);
        let ml = median_of(last.iter().copied(), &mut scratch);
        let spread = 1.4826
            * median_of(
                first
                    .iter()
                    .map(|v| (v - mf).abs())
                    .chain(last.iter().map(|v| (v - ml).abs())),
                &mut scratch,
            );
        let delta = ml - mf;
        let se = 1.2533 * spread * (2.0 / third as f64).sqrt();
        // A trend is real when the change is well beyond its error and the
        // middle third sits on the line (a step or a ramp that stopped is
        // not a trend to extrapolate).
        let middle = &d[third..n - third];
        let tm = median_of(kept[third..n - third].iter().map(|o| o.t), &mut scratch);
        let mm = median_of(middle.iter().copied(), &mut scratch);
        let on_line = tl > tf && {
            let line = mf + delta * (tm - tf) / (tl - tf);
            (mm - line).abs() <= 0.25 * delta.abs() + 2.0 * se
        };
        if on_line && delta.abs() > 3.0 * se {
            slope = delta / (tl - tf);
            slope_se = se / (tl - tf);
            (offsets, inv_counts) = seasonal_offsets(&kept, season, slope, t_mid, &mut scratch);
        }
    }
    let level = median_of(
        kept.iter()
            .zip(&buckets)
            .map(|(o, &b)| o.y - offsets[b] - slope * (o.t - t_mid)),
        &mut scratch,
    );
    // The spread from the differences of consecutive residuals: residuals
    // from medians fitted to the same points understate the noise (a
    // bucket's median sits among its own points); differences do not.
    let resid: Vec<f64> = kept
        .iter()
        .zip(&buckets)
        .map(|(o, &b)| o.y - offsets[b] - slope * (o.t - t_mid) - level)
        .collect();
    let raw_sigma = if n >= 3 {
        1.4826 / std::f64::consts::SQRT_2
            * median_of(resid.windows(2).map(|w| (w[1] - w[0]).abs()), &mut scratch)
    } else {
        1.4826 * median_of(resid.iter().map(|r| r.abs()), &mut scratch)
    };
    // A residual from a bucket fitted to n points holds 1 − 1/n of the
    // noise's variance (two points: half): scale back up.
    let kept_share = buckets
        .iter()
        .map(|&b| 1.0 - inv_counts.get(b).copied().unwrap_or(0.0).min(1.0))
        .sum::<f64>()
        / n.max(1) as f64;
    // Differences understate noise that drifts from point to point
    // (autocorrelated loads); the residuals' own MAD does not: the larger.
    let resid_sigma = 1.4826 * median_of(resid.iter().map(|r| r.abs()), &mut scratch);
    let sigma = raw_sigma.max(resid_sigma) / kept_share.max(0.25).sqrt();
    let hour_sigma = if matches!(season, Seasonality::HourOfDay | Seasonality::HourOfWeek) {
        let mut by_hour: Vec<Vec<f64>> = vec![Vec::new(); 24];
        for (o, r) in kept.iter().zip(&resid) {
            by_hour[o.at.hour() as usize].push(*r);
        }
        by_hour
            .iter()
            .map(|rs| {
                if rs.len() < 8 {
                    0.0
                } else {
                    1.4826 / std::f64::consts::SQRT_2
                        * median_of(rs.windows(2).map(|w| (w[1] - w[0]).abs()), &mut scratch)
                        / kept_share.max(0.25).sqrt()
                }
            })
            .collect()
    } else if season == Seasonality::DayOfWeek {
        // A weekday's own spread: a small weekend partition is noisier.
        let mut by_day: Vec<Vec<f64>> = vec![Vec::new(); 7];
        for (&b, r) in buckets.iter().zip(&resid) {
            by_day[b].push(r.abs());
        }
        by_day
            .iter_mut()
            .map(|rs| {
                let n = rs.len();
                if n < 4 {
                    0.0
                } else {
                    1.4826 * median(rs) / (1.0 - 1.0 / n as f64).sqrt()
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let params = match season {
        Seasonality::Auto | Seasonality::None => 1,
        Seasonality::HourOfWeek => 30,
        s => s.buckets(),
    } + usize::from(slope != 0.0);
    let free = n.saturating_sub(params).max(1);
    let df = 0.37 * free as f64;
    // How well the model fits, to choose a seasonality: the mean absolute
    // residual, which a pattern shown by a minority of points still moves.
    let fit_error = resid.iter().map(|r| r.abs()).sum::<f64>() / n.max(1) as f64;
    Fit {
        offsets,
        inv_counts,
        level,
        slope,
        slope_se,
        t_mid,
        sigma,
        hour_sigma,
        fit_error,
        n,
        df,
    }
}

/// Each bucket's median against the median of all, after a trend, and
/// the sum of 1/points of what each offset is estimated from. The hour of
/// the week is an hour-of-day offset plus a day-of-week one (two medians of
/// many points, rather than one of a few).
fn seasonal_offsets(
    kept: &[&Obs],
    season: Seasonality,
    slope: f64,
    t_mid: f64,
    scratch: &mut Vec<f64>,
) -> (Vec<f64>, Vec<f64>) {
    let detrended: Vec<f64> = kept.iter().map(|o| o.y - slope * (o.t - t_mid)).collect();
    let overall = median_of(detrended.iter().copied(), scratch);
    let by = |key: &dyn Fn(&Obs) -> usize, nb: usize, minus: &dyn Fn(&Obs) -> f64| {
        let mut groups: Vec<Vec<f64>> = vec![Vec::new(); nb];
        for (o, d) in kept.iter().zip(&detrended) {
            groups[key(o)].push(d - overall - minus(o));
        }
        let counts: Vec<f64> = groups.iter().map(|g| g.len() as f64).collect();
        let medians: Vec<f64> = groups
            .iter_mut()
            .map(|g| if g.is_empty() { 0.0 } else { median(g) })
            .collect();
        (medians, counts)
    };
    let inv = |c: f64| if c > 0.0 { 1.0 / c } else { 1.0 };
    match season {
        Seasonality::Auto | Seasonality::None => (vec![0.0], vec![0.0]),
        Seasonality::HourOfDay | Seasonality::DayOfWeek => {
            let (m, c) = by(&|o| season.bucket(o.at), season.buckets(), &|_| 0.0);
            (m, c.into_iter().map(inv).collect())
        }
        Seasonality::HourOfWeek => {
            let hour = |o: &Obs| o.at.hour() as usize;
            let day = |o: &Obs| o.at.weekday().num_days_from_monday() as usize;
            let (h0, _) = by(&hour, 24, &|_| 0.0);
            let (d1, dc) = by(&day, 7, &|o| h0[hour(o)]);
            let (h1, hc) = by(&hour, 24, &|o| d1[day(o)]);
            let mut offsets = vec![0.0; 168];
            let mut invs = vec![0.0; 168];
            for d in 0..7 {
                for h in 0..24 {
                    offsets[d * 24 + h] = h1[h] + d1[d];
                    invs[d * 24 + h] = inv(hc[h]) + inv(dc[d]);
                }
            }
            (offsets, invs)
        }
    }
}

/// A level shift: the latest run of at least `adapt_after` flagged points
/// in a row, all on one side of a fit on the clean points before it,
/// becomes the new normal. The points before it move by the shift's median
/// and the run's points train the model. Returns when the shift began.
fn adapt(
    obs: &mut [Obs],
    s: &Settings,
    cadence: Cadence,
    k: f64,
    (at, current): (NaiveDateTime, f64),
) -> Option<NaiveDateTime> {
    let need = s.adapt_after.max(1);
    // The latest run of flagged points long enough. A shift within noise
    // leaves points inside the band, so a run is a stretch where at least
    // half of the points were flagged, ending with a flagged one.
    let mut found = None;
    let mut end = obs.len();
    while let Some(last) = (0..end).rev().find(|&j| obs[j].flagged) {
        let (mut flagged, mut seen, mut best) = (0usize, 0usize, None);
        for j in (0..=last).rev() {
            seen += 1;
            if obs[j].flagged {
                flagged += 1;
                if 2 * flagged >= seen {
                    best = Some((j, flagged));
                }
            }
            if seen > 2 * flagged + 2 * need {
                break;
            }
        }
        match best {
            Some((start, f)) if f >= need => {
                found = Some((start, last + 1));
                break;
            }
            Some((start, _)) => end = start,
            None => end = last,
        }
    }
    let (start, run_end) = found?;
    let before = &obs[..start];
    let clean_before = before.iter().filter(|o| !o.flagged).count();
    if clean_before < 3 {
        // Nothing to shift from: the run is the history.
        for o in obs[start..run_end].iter_mut() {
            o.flagged = false;
        }
        for o in obs[..start].iter_mut() {
            o.flagged = true;
        }
        return Some(obs[start].at);
    }
    let season = choose(before, s.seasonality, cadence, |o| !o.flagged);
    let old = fit(before, season, |o| !o.flagged);
    let mut diffs: Vec<f64> = obs[start..run_end]
        .iter()
        .map(|o| o.y - old.predict(o.t, season.bucket(o.at), k).0)
        .collect();
    let flagged_above = obs[start..run_end]
        .iter()
        .zip(&diffs)
        .filter(|(o, d)| o.flagged && **d > 0.0)
        .count();
    let flagged = obs[start..run_end].iter().filter(|o| o.flagged).count();
    if flagged_above != 0 && flagged_above != flagged {
        return None;
    }
    let shift = median(&mut diffs);
    // The shift holds while what came after the run (or, right after it,
    // the value judged) sits nearer the new level than the old one.
    let mut tail: Vec<f64> = obs[run_end..]
        .iter()
        .map(|o| o.y - old.predict(o.t, season.bucket(o.at), k).0)
        .collect();
    if tail.is_empty() {
        tail.push(current - old.predict(0.0, season.bucket(at), k).0);
    }
    let after = median(&mut tail);
    if (after - shift).abs() >= after.abs() {
        return None;
    }
    for o in obs[..start].iter_mut() {
        o.y += shift;
    }
    for o in obs[start..run_end].iter_mut() {
        o.flagged = false;
    }
    Some(obs[start].at)
}

fn median_of(it: impl Iterator<Item = f64>, scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend(it);
    median(scratch)
}

/// The median (the mean of the middle two for an even count); 0 when empty.
fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let mid = n / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let hi = *m;
    if n % 2 == 1 {
        hi
    } else {
        let lo = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, NaiveDate};

    use super::*;

    /// A Monday.
    fn start() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 1, 5)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    }

    /// A deterministic wobble in [-1, 1].
    fn wobble(i: usize) -> f64 {
        ((i * 7919 + 13) % 201) as f64 / 100.0 - 1.0
    }

    /// `n` points `step` apart from `start()`, valued by `f(index, time)`.
    fn series(n: usize, step: Duration, f: impl Fn(usize, NaiveDateTime) -> f64) -> Vec<Point> {
        (0..n)
            .map(|i| {
                let at = start() + step * i as i32;
                Point {
                    at,
                    value: f(i, at),
                    outcome: PointOutcome::Normal,
                }
            })
            .collect()
    }

    fn weekend(at: NaiveDateTime) -> bool {
        at.weekday().num_days_from_monday() >= 5
    }

    fn judged(v: Verdict) -> Judgement {
        match v {
            Verdict::Judged(j) => j,
            other => panic!("expected a judgement, got {other:?}"),
        }
    }

    fn daily() -> Settings {
        Settings {
            cadence: Some(Cadence::Daily),
            ..Settings::default()
        }
    }

    #[test]
    fn learns_until_min_training_points() {
        let h = series(9, Duration::days(1), |i, _| 1000.0 + 10.0 * wobble(i));
        let at = start() + Duration::days(9);
        assert_eq!(
            detect(&h, at, 10.0, &daily()),
            Verdict::Learning { have: 9, need: 14 }
        );
        // Points outside the training window do not count.
        let s = Settings {
            training: Duration::days(5),
            ..daily()
        };
        assert_eq!(
            detect(&h, at, 10.0, &s),
            Verdict::Learning { have: 5, need: 14 }
        );
        let h = series(14, Duration::days(1), |i, _| 1000.0 + 10.0 * wobble(i));
        let j = judged(detect(&h, start() + Duration::days(14), 400.0, &daily()));
        assert!(j.anomalous, "{j:?}");
    }

    #[test]
    fn day_of_week_expects_the_weekend_dip() {
        let level = |i: usize, at: NaiveDateTime| {
            (if weekend(at) { 400.0 } else { 1000.0 }) * (1.0 + 0.02 * wobble(i))
        };
        let h = series(56, Duration::days(1), level);
        let saturday = start() + Duration::days(61);
        assert!(weekend(saturday));
        let j = judged(detect(&h, saturday, 410.0, &daily()));
        assert_eq!(j.seasonality, Seasonality::DayOfWeek);
        assert!(!j.anomalous, "a Saturday at the Saturday level: {j:?}");
        assert_eq!(j.context.as_deref(), Some("for a Saturday"));
        assert!(j.expected.lower < 410.0 && 410.0 < j.expected.upper);
        // A Tuesday at the weekend level is a partial load.
        let tuesday = start() + Duration::days(57);
        let j = judged(detect(&h, tuesday, 410.0, &daily()));
        assert!(j.anomalous, "{j:?}");
        assert_eq!(j.outside, Some(Side::Below));
        assert!(j.score < -3.0);
        let text = j.describe(410.0, "410 rows", |v| format!("{v:.0}"));
        assert!(
            text.starts_with("410 rows, expected ")
                && text.contains(" for a Tuesday: below the usual range, 41% of the usual"),
            "{text}"
        );
        // Without seasonality the same Saturday looks like an incident.
        let none = Settings {
            seasonality: Seasonality::None,
            ..daily()
        };
        let j = judged(detect(&h, saturday, 410.0, &none));
        assert_eq!(j.seasonality, Seasonality::None);
        assert!(j.anomalous, "{j:?}");
    }

    #[test]
    fn auto_leaves_out_a_pattern_the_history_does_not_show() {
        let h = series(56, Duration::days(1), |i, _| {
            500.0 * (1.0 + 0.05 * wobble(i))
        });
        let j = judged(detect(&h, start() + Duration::days(56), 505.0, &daily()));
        assert_eq!(j.seasonality, Seasonality::None);
        assert!(!j.anomalous);
    }

    fn hourly_level(i: usize, at: NaiveDateTime, weekly: bool) -> f64 {
        let h = at.hour() as f64;
        let daily = 1.0 + 0.8 * ((h - 14.0) / 24.0 * std::f64::consts::TAU).cos();
        let week = if weekly && weekend(at) { 0.5 } else { 1.0 };
        1000.0 * daily * week * (1.0 + 0.03 * wobble(i))
    }

    #[test]
    fn hour_of_day_expects_the_night() {
        let h = series(24 * 14, Duration::hours(1), |i, at| {
            hourly_level(i, at, false)
        });
        let s = Settings {
            cadence: Some(Cadence::Hourly),
            seasonality: Seasonality::HourOfDay,
            ..Settings::default()
        };
        let night = start() + Duration::days(14) + Duration::hours(2);
        let usual = hourly_level(0, night, false);
        let j = judged(detect(&h, night, usual, &s));
        assert_eq!(j.seasonality, Seasonality::HourOfDay);
        assert_eq!(j.context.as_deref(), Some("at 02:00"));
        assert!(!j.anomalous, "{j:?}");
        // The noon volume at night is a spike.
        let noon = hourly_level(0, night + Duration::hours(12), false);
        let j = judged(detect(&h, night, noon, &s));
        assert!(j.anomalous && j.outside == Some(Side::Above), "{j:?}");
        // `auto` finds the same pattern in an hourly series.
        let auto = Settings {
            seasonality: Seasonality::Auto,
            ..s
        };
        assert_eq!(
            judged(detect(&h, night, usual, &auto)).seasonality,
            Seasonality::HourOfDay
        );
    }

    #[test]
    fn hour_of_week_expects_quiet_weekends() {
        let h = series(24 * 7 * 4, Duration::hours(1), |i, at| {
            hourly_level(i, at, true)
        });
        let s = Settings {
            cadence: Some(Cadence::Hourly),
            ..Settings::default()
        };
        // Saturday 14:00 of the fifth week.
        let sat = start() + Duration::days(33) + Duration::hours(14);
        assert!(weekend(sat));
        let j = judged(detect(&h, sat, hourly_level(0, sat, true), &s));
        assert_eq!(j.seasonality, Seasonality::HourOfWeek);
        assert_eq!(j.context.as_deref(), Some("for a Saturday at 14:00"));
        assert!(!j.anomalous, "{j:?}");
        // A weekday's volume on a Saturday is not.
        let j = judged(detect(
            &h,
            sat,
            hourly_level(0, sat - Duration::days(3), true),
            &s,
        ));
        assert!(j.anomalous, "{j:?}");
        // An hourly series learns for a week and a day before `auto` judges.
        let short = &h[..100];
        assert_eq!(
            detect(short, start() + Duration::hours(100), 1.0, &s),
            Verdict::Learning {
                have: 100,
                need: 192
            }
        );
    }

    #[test]
    fn direction_picks_the_side_that_alerts() {
        let h = series(30, Duration::days(1), |i, _| {
            1000.0 * (1.0 + 0.02 * wobble(i))
        });
        let at = start() + Duration::days(30);
        let with = |direction| Settings {
            direction,
            ..daily()
        };
        let drop = judged(detect(&h, at, 300.0, &with(Direction::Spike)));
        assert!(
            !drop.anomalous && drop.outside == Some(Side::Below),
            "{drop:?}"
        );
        assert!(judged(detect(&h, at, 300.0, &with(Direction::Drop))).anomalous);
        assert!(judged(detect(&h, at, 300.0, &with(Direction::Both))).anomalous);
        let spike = judged(detect(&h, at, 3000.0, &with(Direction::Drop)));
        assert!(!spike.anomalous && spike.outside == Some(Side::Above));
        assert!(judged(detect(&h, at, 3000.0, &with(Direction::Spike))).anomalous);
    }

    #[test]
    fn min_change_is_a_floor() {
        // Nearly no noise: 3% off is many deviations, yet under the floor.
        let h = series(30, Duration::days(1), |i, _| {
            1000.0 * (1.0 + 0.001 * wobble(i))
        });
        let at = start() + Duration::days(30);
        let j = judged(detect(&h, at, 970.0, &daily()));
        assert!(!j.anomalous, "{j:?}");
        assert!(j.score < -3.0, "the score still says how unusual: {j:?}");
        assert!((j.expected.lower - 950.0).abs() < 2.0, "{j:?}");
        assert!((j.expected.upper - 1050.0).abs() < 2.0, "{j:?}");
        assert!(judged(detect(&h, at, 930.0, &daily())).anomalous);
        let none = Settings {
            min_change: 0.0,
            ..daily()
        };
        assert!(judged(detect(&h, at, 970.0, &none)).anomalous);
    }

    #[test]
    fn anomalies_leave_training() {
        let mut h = series(42, Duration::days(1), |i, _| {
            1000.0 * (1.0 + 0.02 * wobble(i))
        });
        // Six incidents: half the usual rows, flagged when they happened.
        for i in [8, 15, 20, 26, 31, 37] {
            h[i].value = 500.0;
            h[i].outcome = PointOutcome::Anomalous;
        }
        let at = start() + Duration::days(42);
        let clean = judged(detect(&h, at, 1000.0, &daily()));
        assert_eq!(clean.trained_on, 36);
        // Had they trained, the band would be wider.
        let mut kept = h.clone();
        for p in &mut kept {
            p.outcome = PointOutcome::Normal;
        }
        let widened = judged(detect(&kept, at, 1000.0, &daily()));
        assert_eq!(widened.trained_on, 42);
        assert!(
            widened.expected.lower < clean.expected.lower,
            "{widened:?} vs {clean:?}"
        );
        // A point flagged by mistake (it fits the rest) trains again.
        let mut mistaken = series(42, Duration::days(1), |i, _| {
            1000.0 * (1.0 + 0.02 * wobble(i))
        });
        mistaken[30].outcome = PointOutcome::Anomalous;
        assert_eq!(
            judged(detect(&mistaken, at, 1000.0, &daily())).trained_on,
            42
        );
        // Failed points never train.
        mistaken[30].outcome = PointOutcome::Failed;
        assert_eq!(
            judged(detect(&mistaken, at, 1000.0, &daily())).trained_on,
            41
        );
    }

    #[test]
    fn a_lasting_shift_becomes_normal_after_adapt_after_points() {
        let mut h = series(40, Duration::days(1), |i, _| {
            1000.0 * (1.0 + 0.02 * wobble(i))
        });
        // From day 40 the table holds twice the rows; each was flagged.
        let shifted = |n: usize| -> Vec<Point> {
            (0..n)
                .map(|k| Point {
                    at: start() + Duration::days(40 + k as i64),
                    value: 2000.0 * (1.0 + 0.02 * wobble(k + 3)),
                    outcome: PointOutcome::Anomalous,
                })
                .collect()
        };
        let mut six = h.clone();
        six.extend(shifted(6));
        let j = judged(detect(&six, start() + Duration::days(46), 2000.0, &daily()));
        assert!(j.anomalous, "six points are not yet a new normal: {j:?}");
        assert_eq!(j.adapted_since, None);
        h.extend(shifted(7));
        let at = start() + Duration::days(47);
        let j = judged(detect(&h, at, 2000.0, &daily()));
        assert!(!j.anomalous, "{j:?}");
        assert_eq!(j.adapted_since, Some(start() + Duration::days(40)));
        assert!(j.expected.lower > 1500.0, "{j:?}");
        let text = j.describe(2000.0, "2000 rows", |v| format!("{v:.0}"));
        assert!(
            text.ends_with("; a level shift since 2026-02-14 00:00 is the new normal"),
            "{text}"
        );
        // The old level is no incident either: the shift may have ended.
        assert!(!judged(detect(&h, at, 1000.0, &daily())).anomalous);
        // adapt_after is the user's.
        let patient = Settings {
            adapt_after: 10,
            ..daily()
        };
        assert!(judged(detect(&h, at, 2000.0, &patient)).anomalous);
    }

    #[test]
    fn medians_of_even_and_odd_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
