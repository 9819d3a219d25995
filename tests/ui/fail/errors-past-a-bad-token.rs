// A bad token, a missing comma or a broken body does not stop the collection: every option
// error is reported in one compile, and the body's own syntax error is rustc's, in place.
#[memoflight::cached(5, colour = 1, cache_none max_size = 0, ttl = "forever")]
fn f(n: u32) -> u32 {
    let = n;
}

fn main() {}
