use memoflight::cached;

#[cached]
fn ok_only(n: u8) -> Result<u8, String> {
    Ok(n)
}

#[cached(cache_err = true)]
fn with_errors(n: u8) -> Result<u8, String> {
    Err(n.to_string())
}

#[cached]
fn some_only(n: u8) -> Option<u8> {
    Some(n)
}

#[cached(cache_none = true)]
fn with_none(n: u8) -> Option<u8> {
    n.checked_sub(1)
}

fn main() {
    assert_eq!(ok_only(1), Ok(1));
    assert!(with_errors(1).is_err());
    assert_eq!(some_only(1), Some(1));
    assert_eq!(with_none(0), None);
    assert_eq!(with_none_cache().len(), 1);
}
