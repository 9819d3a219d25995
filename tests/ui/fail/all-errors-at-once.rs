// Every problem is reported in one compile, each at its own tokens.
#[memoflight::cached(colour = 1, cache_none = true, cache_none = true)]
const fn f<T>(n: impl Copy) {}

fn main() {}
