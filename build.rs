// Builds the small C shim for long double arithmetic (INCRBYFLOAT), which
// Rust has no type for.
fn main() {
    println!("cargo:rerun-if-changed=src/commands/long_double.c");
    cc::Build::new().file("src/commands/long_double.c").opt_level(2).compile("long_double");
}
