fn main() {
    println!("warden {}", env!("CARGO_PKG_VERSION"));
}
