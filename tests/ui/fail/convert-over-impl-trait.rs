// The key type cannot be inferred from `convert` when an argument is an `impl Trait`: say it.
use std::fmt::Display;

#[memoflight::cached(convert = id * 2)]
fn label(prefix: impl Display, id: u64) -> String {
    format!("{prefix}{id}")
}

fn main() {}
