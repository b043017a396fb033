//! `warden backfill D --from P1 --to P2`: rerun a dataset's partition checks
//! over a range, overwriting the results recorded for those partitions.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::bail;
use chrono::Utc;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::args::BackfillArgs;
use super::check::{RunOutcome, exit_code, print};
use super::{find_dataset, load_config, open_registry};
use warden::check::Scope;
use warden::domain::PartitionKey;

pub async fn run(config_path: &Path, args: BackfillArgs) -> anyhow::Result<u8> {
    let loaded = load_config(config_path)?;
    let config = &loaded.config;
    let ds = find_dataset(config, &args.dataset)?;
    let Some(spec) = &ds.partition else {
        bail!(
            "dataset `{}` is not partitioned: there is nothing to backfill",
            ds.name
        );
    };
    let from = PartitionKey::parse(&args.from, spec.granularity)?;
    let to = PartitionKey::parse(&args.to, spec.granularity)?;
    let partitions = PartitionKey::range(from, to)?;
    let runner = warden::app::runner(config, Some(open_registry(config).await?));

    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(partitions.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} partitions {msg} [{elapsed}, eta {eta}]",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    // Partitions are observed concurrently, then evaluated and recorded in
    // order, so a partition's row-count delta sees the one before it.
    let mut observed = futures::stream::iter(partitions.iter().map(|p| {
        let scope = Scope::Partition(*p);
        let runner = &runner;
        async move {
            let pending = runner.observe(ds, &scope).await;
            (scope, pending)
        }
    }))
    .buffered(args.concurrency.max(1));

    let mut outcome = RunOutcome {
        results: Vec::new(),
        unrecorded: Vec::new(),
    };
    while let Some((scope, pending)) = observed.next().await {
        let at = runner.scheduled_time(&scope, Utc::now());
        progress.set_message(
            scope
                .partition()
                .map(ToString::to_string)
                .unwrap_or_default(),
        );
        match runner.finish(ds, pending, at, Utc::now(), true).await {
            Ok(results) => outcome.results.extend(results),
            Err(e) => {
                progress
                    .suspend(|| eprintln!("error: {scope}: {}", warden::format::error_chain(&e)));
                outcome.unrecorded.push(scope.to_string());
                outcome.results.extend(e.into_results());
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    print(&outcome.results, args.format)?;
    Ok(exit_code(&outcome, !loaded.diagnostics.is_empty()))
}
