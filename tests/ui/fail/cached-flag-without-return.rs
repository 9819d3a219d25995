// `with_cached_flag` needs a `Return<T>` to flag: the error is on the return type.
#[memoflight::cached(with_cached_flag)]
fn flag_without_return(n: u64) -> u64 {
    n
}

fn main() {}
