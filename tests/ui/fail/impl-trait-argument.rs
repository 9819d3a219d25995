#[memoflight::cached]
fn f(n: u32, label: impl std::fmt::Display) -> String {
    format!("{n}{label}")
}

fn main() {
    f(1, "x");
}
