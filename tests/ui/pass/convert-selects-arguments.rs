use memoflight::cached;

struct Logger;

#[cached(convert = (id, name))]
fn lookup(_log: &Logger, id: u32, name: &str) -> String {
    format!("{id}{name}")
}

fn main() {
    assert_eq!(lookup(&Logger, 1, "a"), "1a");
    assert_eq!(lookup_cache().remove(&(1, "a".to_string())), Some("1a".to_string()));
}
