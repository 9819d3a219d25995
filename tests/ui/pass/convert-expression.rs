use memoflight::cached;

#[cached(convert = format!("{}-{}", a, b.to_lowercase()))]
fn combined(a: u8, b: &str) -> usize {
    a as usize + b.len()
}

fn main() {
    assert_eq!(combined(1, "AB"), 3);
    assert_eq!(combined(1, "ab"), 3);
    assert_eq!(combined_cache().stats().executions, 1);
}
