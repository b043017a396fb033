//! The `warden` binary: parses the command line, runs one command, and maps
//! its result to the exit status DESIGN §3 documents.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, LogFormat};

/// mimalloc instead of the system allocator, for Rust and (with its
/// `override` feature) for SQLite's C code too: glibc's malloc gives each
/// busy thread an arena of its own (up to eight per core) and keeps what was
/// freed in each, so an agent whose runs, registry connections and HTTP
/// workers allocate on many threads held tens of MiB it no longer used.
/// Built without asking for transparent huge pages (`no_thp`): a 2 MiB huge
/// page is resident whole however little of it is used, which cost an idle
/// agent of 10,000 checks about 20 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (its number in mimalloc v3's
/// `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed is given back to the system at once, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. mimalloc's default delay (1 s) is
/// only acted on when a thread allocates or frees again: the memory a tick
/// freed on threads that then sit idle stayed resident until the next tick
/// (about 20 MiB of an idle agent's 70 at 10,000 checks).
fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options, a plain integer it reads
        // atomically whenever it purges; any thread may set it at any time.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    let cli = Cli::parse();
    // The agent tells what it does; one-shot commands print their results
    // and log only problems.
    let long_running = matches!(
        cli.command,
        cli::args::Command::Run(_) | cli::args::Command::Demo(_)
    );
    init_logging(cli.log_format, if long_running { "info" } else { "warn" });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", cli::error::render(&e));
            ExitCode::from(2)
        }
    }
}

/// Log targets that write secrets as they are, kept to errors whatever
/// `WARDEN_LOG` says: sqlx's PostgreSQL options warn of an unrecognized URL
/// parameter with its value (`sslpassword=…`) and of a malformed `.pgpass`
/// line with the whole line.
const SECRET_LOG_TARGETS: [&str; 1] = ["sqlx_postgres::options"];

fn init_logging(format: LogFormat, default: &str) {
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},tower_http=warn,sqlx=warn")));
    for target in SECRET_LOG_TARGETS {
        filter = filter.add_directive(format!("{target}=error").parse().expect("a directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(cli::color_enabled(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
