//! `cargo bench --bench anomaly`: the `anomaly` check's detector
//! (`warden::detect`, the very code the check calls) on a labelled corpus,
//! side by side with Elementary's documented method, and its speed.
//!
//! **The corpus** (fixed seeds, generated here): daily series of one year
//! and hourly series of ten weeks; weekly and daily seasonality of several
//! strengths, trends up and down, relative noise of 2–15% (and counting
//! noise on small hourly volumes); holidays (a day at 20–50%), missing
//! loads (0 rows), partial loads (−30% to −70%), spikes (×1.6 to ×4), slow
//! drifts of a null rate from 1% to 6% over two to three weeks, lasting
//! level shifts (×0.5 or ×1.7), and clean series with no anomaly at all.
//!
//! **Scoring.** Each series is fed point by point, as the check sees it: a
//! point is judged against the points before it, and the verdict becomes
//! the point's outcome in the history later points learn from. Every
//! incident is a labelled window of points (a level shift's and a drift's
//! window lasts until `adapt_after` + 5 points past their change, the time
//! to become the new normal). A window is *detected* when any point inside
//! it is flagged; a flag outside every window is a *false alarm*.
//! Precision = detected / (detected + false alarms), recall = detected /
//! windows, F1 their harmonic mean. False alarms per series-year are
//! counted on the clean daily series.
//!
//! **The reference** is Elementary's z-score as documented: the value's
//! bucket (the same weekday for daily series, `day_of_week`; the same hour
//! for hourly series, `hour_of_day`) over the last 14 days of that bucket
//! (Elementary multiplies the training period by the season's length, so
//! 14 points of the bucket), the point being judged left in training (the
//! detection period is part of the training set), mean and sample standard
//! deviation, flagged when |z| > 3, with at least 7 training points.
//!
//! **Speed**: 10,000 checks, each with one year of daily history, judged
//! once on one thread.
//!
//! `--quick` runs a quarter of the corpus and a tenth of the speed phase.

use std::time::Instant;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use warden::detect::{Cadence, Point, PointOutcome, Settings, detect};

const F1_TARGET: f64 = 0.85;
const MARGIN_TARGET: f64 = 0.10;
const CLEAN_FA_TARGET: f64 = 1.0;
const SPEED_TARGET_S: f64 = 1.0;
const SPEED_CHECKS: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Clean,
    Missing,
    Partial,
    Spike,
    Holiday,
    Shift,
    Drift,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Missing => "missing loads",
            Self::Partial => "partial loads",
            Self::Spike => "spikes",
            Self::Holiday => "holidays",
            Self::Shift => "level shifts",
            Self::Drift => "null-rate drifts",
        }
    }
}

struct Series {
    family: Family,
    hourly: bool,
    at: Vec<NaiveDateTime>,
    values: Vec<f64>,
    /// Labelled windows, as [start, end) point indices.
    windows: Vec<(usize, usize)>,
}

fn gauss(rng: &mut StdRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn pick<T: Copy>(rng: &mut StdRng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

const ADAPT_AFTER: usize = 7;

/// A volume series: level × trend × seasons × noise, then incidents.
fn volume(seed: u64, family: Family, hourly: bool) -> Series {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = NaiveDate::from_ymd_opt(2025, 1, 6)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let (n, step) = if hourly {
        (24 * 7 * 10, Duration::hours(1))
    } else {
        (365, Duration::days(1))
    };
    let level = 10f64.powf(rng.random_range(if hourly { 1.7..4.0 } else { 2.3..5.5 }));
    let weekly = pick(&mut rng, &[1.0, 0.85, 0.6, 0.4]);
    let daily_swing = pick(&mut rng, &[0.0, 0.5, 0.8]);
    let peak = rng.random_range(10.0..16.0);
    let yearly_growth: f64 = pick(&mut rng, &[0.0, 0.0, 0.3, -0.25, 0.8]);
    let noise = pick(
        &mut rng,
        if hourly {
            &[0.03, 0.06, 0.10, 0.15]
        } else {
            &[0.02, 0.05, 0.08, 0.12]
        },
    );
    let mut at = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let t = start + step * i as i32;
        let years = (t - start).num_hours() as f64 / (24.0 * 365.0);
        let mut v = level * (1.0 + yearly_growth).powf(years);
        if t.weekday().num_days_from_monday() >= 5 {
            v *= weekly;
        }
        if hourly {
            let h = t.hour() as f64;
            let phase = ((h - peak) / 24.0 * 2.0 * std::f64::consts::PI).cos();
            v *= 1.0 + daily_swing * phase;
            // Counting noise on small volumes.
            v += gauss(&mut rng) * v.max(1.0).sqrt();
        }
        v *= (noise * gauss(&mut rng)).exp();
        at.push(t);
        values.push(v.max(0.0).round());
    }
    let mut s = Series {
        family,
        hourly,
        at,
        values,
        windows: Vec::new(),
    };
    incidents(&mut s, &mut rng);
    s
}

/// A null rate of about 1% with day-to-day wobble; a drift family creeps
/// to 6% and stays.
fn null_rate(seed: u64, family: Family) -> Series {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = NaiveDate::from_ymd_opt(2025, 1, 6)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let base = rng.random_range(0.005..0.02);
    let rows: f64 = 10f64.powf(rng.random_range(3.5..5.5));
    let wobble = pick(&mut rng, &[0.03, 0.06, 0.1]);
    let n = 365;
    let drift_at = if family == Family::Drift {
        Some(rng.random_range(90..250))
    } else {
        None
    };
    let drift_len = rng.random_range(14..22);
    let target = base * 6.0;
    let mut at = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let mut p = base;
        if let Some(d) = drift_at
            && i >= d
        {
            let f = ((i - d) as f64 / drift_len as f64).min(1.0);
            p = base + (target - base) * f;
        }
        p *= (wobble * gauss(&mut rng)).exp();
        let sd = (p * (1.0 - p) / rows).sqrt();
        let v = (p + sd * gauss(&mut rng)).clamp(0.0, 1.0);
        at.push(start + Duration::days(i as i64));
        values.push(v);
    }
    let windows = drift_at
        .map(|d| vec![(d, (d + drift_len + ADAPT_AFTER + 5).min(n))])
        .unwrap_or_default();
    Series {
        family,
        hourly: false,
        at,
        values,
        windows,
    }
}

/// Injects the family's incidents after a warm-up, each a labelled window.
fn incidents(s: &mut Series, rng: &mut StdRng) {
    let n = s.values.len();
    let per_day = if s.hourly { 24 } else { 1 };
    let warm = if s.hourly { 21 * 24 } else { 60 };
    let free = |w: &[(usize, usize)], a: usize, b: usize| {
        w.iter()
            .all(|&(x, y)| b + 3 * per_day < x || a > y + 3 * per_day)
    };
    let count = match s.family {
        Family::Clean => 0,
        Family::Shift => 1,
        Family::Holiday => 4,
        _ => 4,
    };
    let mut tries = 0;
    while s.windows.len() < count && tries < 1000 {
        tries += 1;
        match s.family {
            Family::Clean | Family::Drift => return,
            Family::Missing | Family::Partial | Family::Spike => {
                let len = if s.hourly {
                    rng.random_range(1..4)
                } else {
                    rng.random_range(1..3)
                };
                let a = rng.random_range(warm..n - len - 1);
                if !free(&s.windows, a, a + len) {
                    continue;
                }
                let factor = match s.family {
                    Family::Missing => 0.0,
                    Family::Partial => 1.0 - rng.random_range(0.3..0.7),
                    _ => rng.random_range(1.6..4.0),
                };
                for v in &mut s.values[a..a + len] {
                    *v = (*v * factor).round();
                }
                s.windows.push((a, a + len));
            }
            Family::Holiday => {
                // A whole day at 20–50% of usual.
                let day = rng.random_range(warm / per_day..n / per_day - 1);
                let (a, b) = (day * per_day, (day + 1) * per_day);
                if !free(&s.windows, a, b) {
                    continue;
                }
                let factor = rng.random_range(0.2..0.5);
                for v in &mut s.values[a..b] {
                    *v = (*v * factor).round();
                }
                s.windows.push((a, b));
            }
            Family::Shift => {
                let a = rng.random_range(warm..n - 20 * per_day);
                let factor = pick(rng, &[0.5, 1.7]);
                for v in &mut s.values[a..] {
                    *v = (*v * factor).round();
                }
                s.windows.push((a, (a + ADAPT_AFTER + 5).min(n)));
            }
        }
    }
}

fn corpus(quick: bool) -> Vec<Series> {
    let mut out = Vec::new();
    let plan: &[(Family, bool, usize)] = &[
        (Family::Clean, false, 40),
        (Family::Missing, false, 20),
        (Family::Partial, false, 20),
        (Family::Spike, false, 20),
        (Family::Holiday, false, 15),
        (Family::Shift, false, 15),
        (Family::Drift, false, 20),
        (Family::Clean, true, 12),
        (Family::Missing, true, 10),
        (Family::Partial, true, 10),
        (Family::Spike, true, 10),
        (Family::Holiday, true, 5),
        (Family::Shift, true, 8),
    ];
    for (f_i, &(family, hourly, count)) in plan.iter().enumerate() {
        for i in 0..count {
            if quick && i % 4 != 0 {
                continue;
            }
            let seed = 1_000 * f_i as u64 + i as u64;
            let s = if family == Family::Drift || (family == Family::Clean && !hourly && i % 4 == 3)
            {
                null_rate(seed, family)
            } else {
                volume(seed, family, hourly)
            };
            out.push(s);
        }
    }
    out
}

/// Flags of warden's detector, fed point by point like the check.
fn warden_flags(s: &Series) -> Vec<bool> {
    let settings = Settings {
        cadence: Some(if s.hourly {
            Cadence::Hourly
        } else {
            Cadence::Daily
        }),
        adapt_after: ADAPT_AFTER,
        ..Settings::default()
    };
    let mut history: Vec<Point> = Vec::with_capacity(s.values.len());
    let keep = if s.hourly { 24 * 7 * 8 } else { 60 };
    let mut flags = Vec::with_capacity(s.values.len());
    for (&at, &value) in s.at.iter().zip(&s.values) {
        let from = history.len().saturating_sub(keep);
        let v = detect(&history[from..], at, value, &settings);
        let flagged = v.is_anomalous();
        flags.push(flagged);
        history.push(Point {
            at,
            value,
            outcome: if flagged {
                PointOutcome::Anomalous
            } else {
                PointOutcome::Normal
            },
        });
    }
    flags
}

/// Flags of the reference z-score.
fn reference_flags(s: &Series) -> Vec<bool> {
    let period = if s.hourly { 24 } else { 7 };
    (0..s.values.len())
        .map(|i| {
            // The last 14 points of the bucket, and the point itself.
            let mut train: Vec<f64> = (0..=14)
                .filter_map(|k| i.checked_sub(k * period))
                .map(|j| s.values[j])
                .collect();
            if train.len() < 8 {
                return false;
            }
            let n = train.len() as f64;
            let mean = train.iter().sum::<f64>() / n;
            let var = train.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            train.clear();
            let sd = var.sqrt();
            sd > 0.0 && ((s.values[i] - mean) / sd).abs() > 3.0
        })
        .collect()
}

#[derive(Default, Clone, Copy)]
struct Score {
    windows: usize,
    detected: usize,
    false_alarms: usize,
}

impl Score {
    fn add(&mut self, s: &Series, flags: &[bool]) {
        self.windows += s.windows.len();
        self.detected += s
            .windows
            .iter()
            .filter(|&&(a, b)| flags[a..b].iter().any(|&f| f))
            .count();
        self.false_alarms += flags
            .iter()
            .enumerate()
            .filter(|&(i, &f)| f && !s.windows.iter().any(|&(a, b)| i >= a && i < b))
            .count();
    }

    fn precision(&self) -> f64 {
        let flagged = self.detected + self.false_alarms;
        if flagged == 0 {
            1.0
        } else {
            self.detected as f64 / flagged as f64
        }
    }

    fn recall(&self) -> f64 {
        if self.windows == 0 {
            1.0
        } else {
            self.detected as f64 / self.windows as f64
        }
    }

    fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// This thread's CPU time so far, in seconds (Linux: the scheduler's
/// nanoseconds on a CPU); `None` elsewhere, and wall time is used instead.
fn thread_cpu() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let verbose = args.iter().any(|a| a == "--verbose");
    let series = corpus(quick);
    let hourly = series.iter().filter(|s| s.hourly).count();
    println!(
        "corpus: {} series ({} daily of 365 points, {} hourly of 1,680), {} labelled windows",
        series.len(),
        series.len() - hourly,
        hourly,
        series.iter().map(|s| s.windows.len()).sum::<usize>()
    );

    let mut w_total = Score::default();
    let mut r_total = Score::default();
    let mut by_family: Vec<(String, Score, Score)> = Vec::new();
    let mut clean_daily = (0usize, 0usize, 0usize); // series, warden FAs, reference FAs
    let started = Instant::now();
    let mut evaluated = 0usize;
    let mut warden_time = std::time::Duration::ZERO;
    for s in &series {
        let t = Instant::now();
        let wf = warden_flags(s);
        warden_time += t.elapsed();
        evaluated += s.values.len();
        let rf = reference_flags(s);
        let mut w = Score::default();
        let mut r = Score::default();
        w.add(s, &wf);
        r.add(s, &rf);
        w_total.add(s, &wf);
        r_total.add(s, &rf);
        let key = format!(
            "{} {}",
            if s.hourly { "hourly" } else { "daily" },
            s.family.name()
        );
        if verbose && (w.false_alarms > 0 || w.detected < w.windows) {
            let missed: Vec<_> = s
                .windows
                .iter()
                .filter(|&&(a, b)| !wf[a..b].iter().any(|&f| f))
                .collect();
            let fas: Vec<usize> = wf
                .iter()
                .enumerate()
                .filter(|&(i, &f)| f && !s.windows.iter().any(|&(a, b)| i >= a && i < b))
                .map(|(i, _)| i)
                .collect();
            println!("  {key}: missed {missed:?}, false alarms at {fas:?}");
        }
        match by_family.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, fw, fr)) => {
                fw.add(s, &wf);
                fr.add(s, &rf);
            }
            None => by_family.push((key, w, r)),
        }
        if s.family == Family::Clean && !s.hourly {
            clean_daily.0 += 1;
            clean_daily.1 += w.false_alarms;
            clean_daily.2 += r.false_alarms;
        }
    }
    let total = started.elapsed();

    println!();
    println!(
        "{:<26} {:>7} | {:>8} {:>8} {:>6} {:>6} | {:>8} {:>8} {:>6} {:>6}",
        "series",
        "windows",
        "w.found",
        "w.FA",
        "w.P",
        "w.R",
        "ref.found",
        "ref.FA",
        "ref.P",
        "ref.R"
    );
    for (key, w, r) in &by_family {
        println!(
            "{:<26} {:>7} | {:>8} {:>8} {:>6.2} {:>6.2} | {:>8} {:>8} {:>6.2} {:>6.2}",
            key,
            w.windows,
            w.detected,
            w.false_alarms,
            w.precision(),
            w.recall(),
            r.detected,
            r.false_alarms,
            r.precision(),
            r.recall()
        );
    }
    println!();
    println!("                     warden   reference");
    println!(
        "precision           {:>7.3}   {:>7.3}",
        w_total.precision(),
        r_total.precision()
    );
    println!(
        "recall              {:>7.3}   {:>7.3}",
        w_total.recall(),
        r_total.recall()
    );
    println!(
        "F1                  {:>7.3}   {:>7.3}",
        w_total.f1(),
        r_total.f1()
    );
    let years = clean_daily.0 as f64; // each clean daily series is one year
    let w_fa = clean_daily.1 as f64 / years.max(1.0);
    let r_fa = clean_daily.2 as f64 / years.max(1.0);
    println!("false alarms per series-year, clean daily: {w_fa:>5.2}   {r_fa:>7.2}");
    println!(
        "warden: {} points judged in {:.2} s ({:.1} µs each, history up to 8 weeks); whole run {:.2} s",
        evaluated,
        warden_time.as_secs_f64(),
        warden_time.as_secs_f64() * 1e6 / evaluated.max(1) as f64,
        total.as_secs_f64()
    );

    // Speed: 10,000 checks × one year of daily history, judged once each.
    let checks = if quick {
        SPEED_CHECKS / 10
    } else {
        SPEED_CHECKS
    };
    let histories: Vec<(Vec<Point>, NaiveDateTime, f64)> = (0..100u64)
        .map(|i| {
            let s = volume(90_000 + i, Family::Clean, false);
            let n = s.values.len();
            let pts = (0..n - 1)
                .map(|j| Point {
                    at: s.at[j],
                    value: s.values[j],
                    outcome: PointOutcome::Normal,
                })
                .collect();
            (pts, s.at[n - 1], s.values[n - 1])
        })
        .collect();
    let settings = Settings {
        cadence: Some(Cadence::Daily),
        ..Settings::default()
    };
    let t = Instant::now();
    let cpu = thread_cpu();
    let mut anomalous = 0usize;
    for c in 0..checks {
        let (h, at, v) = &histories[c % histories.len()];
        if detect(h, *at, *v, &settings).is_anomalous() {
            anomalous += 1;
        }
    }
    let wall = t.elapsed().as_secs_f64();
    let (spent, clock) = match (cpu, thread_cpu()) {
        (Some(a), Some(b)) => (b - a, "CPU"),
        _ => (wall, "wall"),
    };
    let scaled = spent * SPEED_CHECKS as f64 / checks as f64;
    println!(
        "speed: {checks} checks × 365 days of history judged in {spent:.3} s of {clock} time on one thread ({wall:.3} s wall; {anomalous} anomalous){}",
        if quick {
            format!(", {scaled:.3} s scaled to 10,000")
        } else {
            String::new()
        }
    );

    println!();
    let f1 = w_total.f1();
    println!(
        "target F1 >= {F1_TARGET}: {f1:.3} {}",
        verdict(f1 >= F1_TARGET)
    );
    let margin = f1 - r_total.f1();
    println!(
        "target F1 >= reference + {MARGIN_TARGET}: {:+.3} {}",
        margin,
        verdict(margin >= MARGIN_TARGET)
    );
    println!(
        "target <= {CLEAN_FA_TARGET} false alarm per series-year on clean daily series: {w_fa:.2} {}",
        verdict(w_fa <= CLEAN_FA_TARGET)
    );
    println!(
        "target 10,000 checks × 1 year daily in < {SPEED_TARGET_S} s CPU: {scaled:.3} s {}",
        verdict(scaled < SPEED_TARGET_S)
    );
}
