//! `warden init`: write a working configuration for an existing warehouse,
//! validate it as `warden validate` does, and say what to run next.

use chrono::Utc;
use warden::init::{Options, PASSWORD_VAR, Written};

use super::args::InitArgs;
use super::validate;

pub async fn run(args: InitArgs) -> anyhow::Result<u8> {
    let options = Options {
        warehouse: args.warehouse,
        schema: args.schema,
        tables: args.tables,
        dir: args.dir,
        sample: args.sample,
        force: args.force,
    };
    let written = warden::init::run(&options, Utc::now()).await?;
    report(&written);
    // The password is known here; the files only name its variable.
    let password = written.password.clone();
    let env = move |name: &str| match (&password, name) {
        (Some(p), PASSWORD_VAR) => Some(p.clone()),
        _ => std::env::var(name).ok(),
    };
    if validate::run_with_env(&written.config, &env) != 0 {
        eprintln!("The files are written; fix the problems above, then run `warden validate`.");
        return Ok(2);
    }
    next_steps(&options, &written);
    Ok(0)
}

/// What was read and written.
fn report(w: &Written) {
    println!(
        "Read the catalog of schema {} and profiled {} table{} ({} statements in all).",
        w.schema,
        w.datasets,
        plural(w.datasets),
        w.statements
    );
    for (name, why) in &w.skipped {
        println!("Left out `{name}`: {why}");
    }
    println!("Wrote {}", w.config.display());
    println!(
        "Wrote {} ({} dataset{}, {} checks, each with the reason it is proposed)",
        w.checks.display(),
        w.datasets,
        plural(w.datasets),
        w.checks_proposed
    );
    println!("Wrote {} (alerts go to warden's log)", w.routes.display());
}

/// The commands to run next.
fn next_steps(options: &Options, w: &Written) {
    println!("\nNext:");
    if options.dir != std::path::Path::new(".") {
        println!("  cd {}", options.dir.display());
    }
    if w.password.is_some() {
        println!(
            "  export {PASSWORD_VAR}=...   # the password of the URL: warden.yaml names ${{{PASSWORD_VAR}}}, never the password"
        );
    }
    println!("  warden check    # run the checks once and print the results");
    println!(
        "  warden run      # start the agent: checks every 30 minutes, status page on http://127.0.0.1:9464/"
    );
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
