struct Report;

#[memoflight::cached]
fn f(n: u32) -> Report {
    let _ = n;
    Report
}

fn main() {
    f(1);
}
