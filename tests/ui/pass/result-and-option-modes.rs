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

/// A crate's own `Result` alias is std's `Result`: `Ok` values only are cached.
mod alias {
    #[derive(Clone, Debug, PartialEq)]
    pub struct Error;
    pub type Result<T> = std::result::Result<T, Error>;

    #[memoflight::cached]
    pub fn parsed(n: u8) -> Result<u8> {
        n.checked_sub(1).ok_or(Error)
    }
}

/// A type of one's own named `Option` (not std's) is a plain value with `cache_none`.
mod own {
    #[derive(Clone, Debug, PartialEq)]
    pub enum Option<T> {
        Nothing,
        Just(T),
    }

    #[memoflight::cached(cache_none)]
    pub fn maybe(n: u8) -> Option<u8> {
        match n {
            0 => Option::Nothing,
            n => Option::Just(n),
        }
    }
}

fn main() {
    assert_eq!(alias::parsed(0), Err(alias::Error));
    assert_eq!(alias::parsed(2), Ok(1));
    assert_eq!(alias::parsed_cache().len(), 1);
    assert_eq!(own::maybe(0), own::Option::Nothing);
    assert_eq!(own::maybe(3), own::Option::Just(3));
    assert_eq!(own::maybe_cache().len(), 2);
    assert_eq!(ok_only(1), Ok(1));
    assert!(with_errors(1).is_err());
    assert_eq!(some_only(1), Some(1));
    assert_eq!(with_none(0), None);
    assert_eq!(with_none_cache().len(), 1);
}
