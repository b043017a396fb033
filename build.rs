//! Rebuild when a registry migration is added: `sqlx::migrate!` embeds the
//! files it finds but cannot watch its directories for new ones.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
