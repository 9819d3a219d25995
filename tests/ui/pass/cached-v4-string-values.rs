// The string forms of `cached` 0.4x are accepted, so switching is a one-word change.
use memoflight::cached;

#[cached(key = "String", convert = r#"{ format!("{}{}", a, b) }"#)]
fn keyed(a: &str, b: &str) -> usize {
    a.len() + b.len()
}

fn main() {
    assert_eq!(keyed("a", "b"), 2);
    assert_eq!(keyed_cache().remove("ab"), Some(2));
}
