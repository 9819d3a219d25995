// A type of one's own named `Option` is taken for std's (generated code builds `Some`): the
// error says so on the return type; `cache_none` caches it as a plain value.
#[derive(Clone)]
pub enum Option<T> {
    Nothing,
    Just(T),
}

#[memoflight::cached]
fn maybe(n: u8) -> Option<u8> {
    Option::Just(n)
}

fn main() {}
