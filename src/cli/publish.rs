//! `warden publish D --partition P --gate-id G`: records that the pipeline
//! published the partition the gate allowed. Exit 0 when recorded (or
//! already recorded with that gate), 2 otherwise.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::args::PublishArgs;
use super::client;

/// How long the agent may take to record the publication.
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct Partition {
    dataset: String,
    partition: String,
    state: String,
    published_gate_id: Option<String>,
}

pub async fn run(config_path: &Path, args: PublishArgs) -> anyhow::Result<u8> {
    let server = client::server(args.server.as_deref(), config_path)?;
    let url = client::endpoint(
        &server,
        &[
            "api",
            "v1",
            "datasets",
            &args.dataset,
            "partitions",
            &args.partition,
            "publish",
        ],
    )?;
    let mut body = json!({"gate_id": args.gate_id});
    if let Some(by) = &args.by {
        body["by"] = json!(by);
    }
    let patience = client::Patience {
        attempt: TIMEOUT,
        retry_within: client::RETRY_WITHIN,
    };
    let answer = client::post(&url, args.token.as_deref(), &body, patience).await?;
    if answer.status.as_u16() != 200 {
        eprintln!("error: {}", answer.error_line());
        if let Some(hint) = answer.auth_hint() {
            eprintln!("{hint}");
        }
        return Ok(2);
    }
    let partition: Partition = answer.json()?;
    println!(
        "{} partition {} is {} (gate {})",
        partition.dataset,
        partition.partition,
        partition.state,
        partition.published_gate_id.as_deref().unwrap_or("-")
    );
    Ok(0)
}
